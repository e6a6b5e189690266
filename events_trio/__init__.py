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
"""

from .app import create_app as create_app
from .broadcast import BroadcastReceiver as BroadcastReceiver
from .broadcast import BroadcastSender as BroadcastSender
from .broadcast import BroadcastStatistics as BroadcastStatistics
from .broadcast import Lagged as Lagged
from .broadcast import open_broadcast_channel as open_broadcast_channel
from .buffer import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from .buffer import BufferSnapshot as BufferSnapshot
from .buffer import EventBuffer as EventBuffer
from .config import ServerConfig as ServerConfig
from .errors import ConfigError as ConfigError
from .errors import EventsTrioError as EventsTrioError
from .errors import InvalidParameter as InvalidParameter
from .errors import StartupError as StartupError
from .events import ConfigChanged as ConfigChanged
from .events import MergeFailure as MergeFailure
from .events import StageTransition as StageTransition
from .events import StoredEvent as StoredEvent
from .events import StoredMergeFailure as StoredMergeFailure
from .events import StoredStoryBlocked as StoredStoryBlocked
from .events import StoryBlocked as StoryBlocked
from .events import WatcherEvent as WatcherEvent
from .events import WorkItem as WorkItem
from .hub import EventHub as EventHub
from .longpoll import MAX_WAIT_S as MAX_WAIT_S
from .longpoll import LongPoll as LongPoll
from .server import RunningServer as RunningServer
from .server import run_server as run_server
from .subscriber import run_subscriber as run_subscriber

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
