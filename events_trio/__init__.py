"""events-trio: pipeline notifications from many project servers to one chat channel.

The public API, re-exported here:

* events — :class:`WorkItem`, :class:`MergeFailure`, :class:`StoryBlocked`,
  :class:`ConfigChanged` (``WatcherEvent``: what sources emit) and
  :class:`StageTransition`, :class:`StoredMergeFailure`,
  :class:`StoredStoryBlocked` (``StoredEvent``: what is buffered and served);
* the broadcast channel — :func:`open_broadcast_channel`, :class:`Lagged`;
* the buffer — :class:`EventBuffer`; the hub — :class:`EventHub`;
* the server — :class:`ServerConfig`, :func:`run_server`,
  :class:`RunningServer`, :func:`create_app`;
* errors — :class:`EventsTrioError` and its subclasses.

The subpackages are layers (``core`` < ``wire`` < ``sources`` < ``hosting``
< ``server`` | ``gateway`` < ``cli``), drawn in docs/architecture.md.
"""

from .core.broadcast import BroadcastReceiver as BroadcastReceiver
from .core.broadcast import BroadcastSender as BroadcastSender
from .core.broadcast import BroadcastStatistics as BroadcastStatistics
from .core.broadcast import Lagged as Lagged
from .core.broadcast import open_broadcast_channel as open_broadcast_channel
from .core.buffer import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from .core.buffer import BufferSnapshot as BufferSnapshot
from .core.buffer import EventBuffer as EventBuffer
from .core.errors import ConfigError as ConfigError
from .core.errors import EventsTrioError as EventsTrioError
from .core.errors import InvalidParameter as InvalidParameter
from .core.errors import StartupError as StartupError
from .core.events import ConfigChanged as ConfigChanged
from .core.events import MergeFailure as MergeFailure
from .core.events import StageTransition as StageTransition
from .core.events import StoredEvent as StoredEvent
from .core.events import StoredMergeFailure as StoredMergeFailure
from .core.events import StoredStoryBlocked as StoredStoryBlocked
from .core.events import StoryBlocked as StoryBlocked
from .core.events import WatcherEvent as WatcherEvent
from .core.events import WorkItem as WorkItem
from .core.waiting import MAX_WAIT_S as MAX_WAIT_S
from .core.waiting import LongPoll as LongPoll
from .server.app import create_app as create_app
from .server.config import ServerConfig as ServerConfig
from .server.hub import EventHub as EventHub
from .server.run import RunningServer as RunningServer
from .server.run import run_server as run_server
from .server.subscriber import run_subscriber as run_subscriber

__all__ = [
    "DEFAULT_CAPACITY",
    "MAX_WAIT_S",
    "BroadcastReceiver",
    "BroadcastSender",
    "BroadcastStatistics",
    "BufferSnapshot",
    "ConfigChanged",
    "ConfigError",
    "EventBuffer",
    "EventHub",
    "EventsTrioError",
    "InvalidParameter",
    "Lagged",
    "LongPoll",
    "MergeFailure",
    "RunningServer",
    "ServerConfig",
    "StageTransition",
    "StartupError",
    "StoredEvent",
    "StoredMergeFailure",
    "StoredStoryBlocked",
    "StoryBlocked",
    "WatcherEvent",
    "WorkItem",
    "create_app",
    "open_broadcast_channel",
    "run_server",
    "run_subscriber",
]
