// events-trio gateway page: the merged feed from GET /api/events/stream
// (EventSource reconnects with Last-Event-ID by itself) and the project
// table from GET /api/projects. No dependencies, no build step.
// With a read token the API answers 401: the page shows its sign-in form,
// POSTs the token to /api/session (the gateway sets an HttpOnly cookie that
// EventSource and fetch then send) and never keeps the token itself.
"use strict";

(function () {
  const FEED_LIMIT = 500; // entries kept on the page
  const HISTORY_MS = 60 * 60 * 1000; // first load shows the last hour
  const PROJECTS_EVERY_MS = 2000;
  const TIMES_EVERY_MS = 5000;

  const feed = document.getElementById("feed");
  const emptyFeed = document.getElementById("empty-feed");
  const notices = document.getElementById("notices");
  const noNotices = document.getElementById("no-notices");
  const projectRows = document.querySelector("#projects tbody");
  const projectFilter = document.getElementById("filter-project");
  const typeFilter = document.getElementById("filter-type");
  const connection = document.getElementById("connection");
  const content = document.getElementById("content");
  const signin = document.getElementById("signin");
  const signinForm = document.getElementById("signin-form");
  const signinToken = document.getElementById("signin-token");
  const signinError = document.getElementById("signin-error");
  const signout = document.getElementById("signout");
  const RECONNECT_MS = 2000;
  const attention = document.getElementById("attention");
  const noAttention = document.getElementById("no-attention");
  const chart = document.getElementById("chart");
  const storyPanel = document.getElementById("story-panel");
  const storyTitle = document.getElementById("story-title");
  const storySummary = document.getElementById("story-summary");
  const storyHistory = document.getElementById("story-history");
  const STORIES_DELAY_MS = 150; // after an event, refresh what needs attention
  const WHY = { blocked: "blocked", merge_failed: "merge failed" };
  const SVG = "http://www.w3.org/2000/svg";
  let summary = { projects: [], events_per_hour: [] };
  let storiesTimer = null;
  let source = null; // the open EventSource, if any
  const seen = new Set(); // ids already shown: a reconnect never duplicates

  // Same rule as events_trio/gateway/sinks/format.py stage_name():
  // "3_qa" -> "QA", "2_current" -> "Current", "Current" -> "Current".
  const STAGE_WORDS = { qa: "QA" };
  function stageName(key) {
    const match = /^[0-9]+_(.+)$/.exec(key);
    if (!match) return key;
    return match[1]
      .split("_")
      .map((w) => STAGE_WORDS[w.toLowerCase()] || w.charAt(0).toUpperCase() + w.slice(1).toLowerCase())
      .join(" ");
  }

  function relative(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 5) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  // A relative time ("3 min ago") with the exact time on hover.
  function timeEl(ms) {
    const time = el("time", "", relative(ms));
    time.dateTime = new Date(ms).toISOString();
    time.dataset.ms = String(ms);
    time.title = new Date(ms).toLocaleString() + " (" + time.dateTime + ")";
    return time;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function describe(event) {
    switch (event.type) {
      case "stage_transition":
        return [event.story_id + "  " + stageName(event.from_stage) + " -> " + stageName(event.to_stage), ""];
      case "merge_failure":
        return ["merge failed: " + event.story_id, event.reason];
      case "story_blocked":
        return ["blocked: " + event.story_id, event.reason];
      case "gateway_notice":
        return [event.message, ""];
      default:
        return [event.type + (event.story_id ? ": " + event.story_id : ""), ""];
    }
  }

  function visible(item) {
    const project = projectFilter.value;
    const type = typeFilter.value;
    return (!project || item.dataset.project === project) && (!type || item.dataset.type === type);
  }

  function applyFilters() {
    for (const item of feed.children) item.hidden = !visible(item);
  }

  function addEntry(id, event) {
    if (!id || seen.has(id)) return;
    seen.add(id);
    const [text, reason] = describe(event);
    const item = el("li", "kind-" + event.type);
    item.dataset.id = id;
    item.dataset.project = event.project || "";
    item.dataset.type = event.type;
    item.append(el("span", "project", event.project || ""));
    const what = el("span", "what", text);
    if (reason) what.append(" ", el("span", "reason", "— " + reason));
    item.append(what);
    item.append(timeEl(event.timestamp_ms));
    if (event.story_id && event.project) item.append(storyButton(event.project, event.story_id, "history"));
    item.hidden = !visible(item);
    feed.prepend(item);
    while (feed.children.length > FEED_LIMIT) {
      seen.delete(feed.lastElementChild.dataset.id);
      feed.lastElementChild.remove();
    }
    emptyFeed.hidden = true;
    if (event.project) knowProject(event.project);
    if (event.story_id) scheduleStories();
  }

  function addNotice(text) {
    const item = el("li", "", text);
    notices.prepend(item);
    while (notices.children.length > 20) notices.lastElementChild.remove();
    noNotices.hidden = true;
  }

  function knowProject(name) {
    for (const option of projectFilter.options) if (option.value === name) return;
    projectFilter.append(new Option(name, name));
  }

  function cell(text, className) {
    return el("td", className, text === null || text === undefined ? "—" : String(text));
  }

  function renderProjects(projects) {
    const rows = projects.map((p) => {
      const row = el("tr");
      row.dataset.project = p.name;
      row.append(el("th", "", p.name));
      row.firstChild.scope = "row";
      const state = cell(p.state, "state state-" + p.state);
      row.append(state);
      const last = el("td");
      if (p.last_event_ms) last.append(timeEl(p.last_event_ms));
      else last.textContent = "—";
      row.append(last);
      const counts = projectSummary(p.name);
      row.append(cell(stageText(counts.stages), "stages"));
      row.append(cell(counts.stuck, "stuck" + (counts.stuck ? " stuck-some" : "")));
      row.append(cell(p.last_error));
      knowProject(p.name);
      return row;
    });
    projectRows.replaceChildren(...rows);
  }

  function projectSummary(name) {
    return summary.projects.find((p) => p.name === name) || { stages: {}, stuck: 0 };
  }

  function stageText(stages) {
    const keys = Object.keys(stages).sort();
    if (!keys.length) return "—";
    return keys.map((key) => stageName(key) + " " + stages[key]).join(" · ");
  }

  function storyButton(project, storyId, label) {
    const button = el("button", "story-link", label || storyId);
    button.type = "button";
    if (label) button.setAttribute("aria-label", "history of " + storyId);
    button.addEventListener("click", () => openStory(project, storyId));
    return button;
  }

  function renderAttention(stories) {
    const items = stories.map((story) => {
      const item = el("li");
      item.dataset.project = story.project;
      item.dataset.story = story.story_id;
      item.append(el("span", "project", story.project), storyButton(story.project, story.story_id));
      item.append(el("span", "why", WHY[story.stuck] + (story.reason ? " — " + story.reason : "")));
      const since = el("span", "since", "since ");
      since.append(timeEl(story.since_ms));
      item.append(since);
      return item;
    });
    attention.replaceChildren(...items);
    noAttention.hidden = items.length > 0;
  }

  function renderChart(hours) {
    const width = 480, height = 90, top = 4, bottom = 18;
    const most = Math.max(1, ...hours.map((h) => h.events));
    const bar = width / Math.max(1, hours.length);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("role", "img");
    const total = hours.reduce((sum, h) => sum + h.events, 0);
    svg.setAttribute("aria-label", total + " events in the last 24 hours");
    hours.forEach((hour, n) => {
      const h = ((height - top - bottom) * hour.events) / most;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(n * bar + 1));
      rect.setAttribute("y", String(height - bottom - h));
      rect.setAttribute("width", String(bar - 2));
      rect.setAttribute("height", String(Math.max(h, hour.events ? 1 : 0)));
      rect.setAttribute("class", "bar");
      const title = document.createElementNS(SVG, "title");
      const start = new Date(hour.start_ms);
      title.textContent = start.toLocaleString() + ": " + hour.events + " events";
      rect.append(title);
      svg.append(rect);
    });
    [[0, "start", hours.length ? hours[0].start_ms : 0], [width, "end", null]].forEach(([x, anchor, ms]) => {
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", String(x));
      label.setAttribute("y", String(height - 4));
      label.setAttribute("text-anchor", anchor);
      label.setAttribute("class", "axis");
      label.textContent = ms ? "24 h ago" : "now";
      svg.append(label);
    });
    chart.replaceChildren(svg);
  }

  async function getJson(path) {
    try {
      const response = await fetch(path, { headers: { Accept: "application/json" } });
      if (response.status === 401) showSignIn();
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null; // the gateway is restarting; the next refresh tries again
    }
  }

  async function refreshStories() {
    storiesTimer = null;
    const [stuck, latest] = await Promise.all([
      getJson("/api/stories?attention=1&limit=200"),
      getJson("/api/summary"),
    ]);
    if (stuck) renderAttention(stuck);
    if (latest) {
      summary = latest;
      renderChart(latest.events_per_hour);
    }
  }

  function scheduleStories() {
    if (storiesTimer === null) storiesTimer = setTimeout(refreshStories, STORIES_DELAY_MS);
  }

  async function openStory(project, storyId) {
    const path = "/api/stories/" + encodeURIComponent(project) + "/" + encodeURIComponent(storyId);
    const story = await getJson(path);
    if (!story) return;
    storyTitle.textContent = project + " · " + storyId;
    const state = story.stuck ? WHY[story.stuck] + (story.reason ? " — " + story.reason : "") : "moving";
    storySummary.textContent = "Stage: " + (story.stage ? stageName(story.stage) : "unknown") + "; " + state;
    storyHistory.replaceChildren(
      ...story.history
        .slice()
        .reverse()
        .map((event) => {
          const [text, reason] = describe(event);
          const item = el("li", "kind-" + event.type);
          const what = el("span", "what", text);
          if (reason) what.append(" ", el("span", "reason", "— " + reason));
          item.append(what, timeEl(event.timestamp_ms));
          return item;
        })
    );
    storyPanel.hidden = false;
    storyTitle.tabIndex = -1;
    storyTitle.focus();
  }

  // Returns the status of GET /api/projects (0 when the gateway is unreachable).
  async function refreshProjects() {
    try {
      const response = await fetch("/api/projects", { headers: { Accept: "application/json" } });
      if (response.status === 401) showSignIn();
      else if (response.ok) renderProjects(await response.json());
      return response.status;
    } catch (error) {
      return 0; // the gateway is restarting; the next refresh tries again
    }
  }

  function showSignIn() {
    if (source) source.close();
    source = null;
    content.hidden = true;
    signout.hidden = true;
    signin.hidden = false;
    connection.textContent = "signed out";
    connection.className = "connection";
    signinToken.focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = signinToken.value;
    signinToken.value = ""; // the page keeps no copy of the token
    let response;
    try {
      response = await fetch("/api/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: token }),
      });
    } catch (error) {
      response = null;
    }
    if (response && response.ok) {
      signinError.hidden = true;
      signin.hidden = true;
      signout.hidden = false;
      start();
    } else {
      signinError.textContent = response && response.status === 401 ? "Wrong token." : "Sign-in failed; try again.";
      signinError.hidden = false;
    }
  }

  async function signOut() {
    try {
      await fetch("/api/session", { method: "DELETE" });
    } finally {
      showSignIn();
    }
  }

  async function start() {
    if ((await refreshProjects()) === 401) return;
    content.hidden = false;
    await refreshStories();
    refreshProjects();
    if (!source) connect();
  }

  function connect() {
    const since = Date.now() - HISTORY_MS;
    source = new EventSource("/api/events/stream?since=" + since);
    const mine = source;
    source.onopen = () => {
      connection.textContent = "live";
      connection.className = "connection live";
    };
    source.onerror = () => {
      connection.textContent = "reconnecting…";
      connection.className = "connection lost";
      // A refused stream (401 after a sign-out elsewhere, a 5xx) is not
      // retried by EventSource itself: find out why, then try again.
      if (mine.readyState === EventSource.CLOSED && source === mine) {
        source = null;
        setTimeout(start, RECONNECT_MS);
      }
    };
    source.onmessage = (message) => addEntry(message.lastEventId, JSON.parse(message.data));
    source.addEventListener("notice", (message) => {
      const notice = JSON.parse(message.data);
      if (seen.has(message.lastEventId)) return;
      addEntry(message.lastEventId, notice);
      addNotice(notice.message);
      refreshProjects();
    });
    source.addEventListener("gap", (message) => {
      addNotice(JSON.parse(message.data).missed + " events missed");
    });
  }

  projectFilter.addEventListener("change", applyFilters);
  typeFilter.addEventListener("change", applyFilters);
  signinForm.addEventListener("submit", signIn);
  signout.addEventListener("click", signOut);
  document.getElementById("story-close").addEventListener("click", () => {
    storyPanel.hidden = true;
  });
  setInterval(() => {
    if (signin.hidden) {
      refreshProjects();
      refreshStories();
    }
  }, PROJECTS_EVERY_MS);
  setInterval(() => {
    for (const time of document.querySelectorAll("time[data-ms]")) time.textContent = relative(Number(time.dataset.ms));
  }, TIMES_EVERY_MS);
  start();
})();
