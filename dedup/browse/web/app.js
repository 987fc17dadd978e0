/* The story browser served by `dedup serve` at /.
 *
 * Views (the part after # in the address): #/check, #/stories?date_from=&date_to=&lang=&several=1&offset=,
 * #/story/<story id>, #/article/<article id>. Data comes from the service's JSON endpoints,
 * with the token (kept in sessionStorage) as "Authorization: Bearer". Rendering goes
 * through render.js (text nodes only).
 */
"use strict";

(() => {
  const { el, append, langLabel, safeUrl, matchCard, membersByLang, storyMeta, plural, rulesText } = Dedup;
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "dedup.token";
  const PAGE = 20;

  // ------------------------------------------------------------------ the API
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: opts.method || "GET",
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // --------------------------------------------------------------- messages
  function say(message, kind) {
    const box = $("status");
    box.replaceChildren();
    if (!message) return;
    box.className = kind === "error" ? "status error" : "status";
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    append(box, [message]);
  }

  function showError(error) {
    if (error instanceof ApiError && error.status === 401) {
      askToken(error.message);
      return;
    }
    const items = (error.body && error.body.errors) || [];
    say(
      el(
        "div",
        {},
        el("strong", {}, error instanceof ApiError ? `Error ${error.status}: ` : "Error: "),
        error.message,
        items.length ? el("ul", {}, items.map((e) => el("li", {}, `${e.loc}: ${e.msg}`))) : null,
      ),
      "error",
    );
  }

  // ------------------------------------------------------------------ token
  let retry = null;

  function askToken(reason) {
    const panel = $("token-panel");
    panel.hidden = false;
    $("token-reason").textContent = reason
      ? `${reason}. The token is kept in this tab only (session storage).`
      : "The token is kept in this tab only (session storage).";
    $("token-input").value = "";
    $("token-input").focus();
  }

  function setupToken() {
    $("token-panel").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token-panel").hidden = true;
      say("");
      if (retry) retry();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token-input").value = "";
      say("Token forgotten.");
    });
    $("token-button").addEventListener("click", () => {
      const panel = $("token-panel");
      if (panel.hidden) askToken(null);
      else panel.hidden = true;
    });
  }

  async function storeInfo() {
    try {
      const health = await api("/health");
      $("store-info").textContent = `${plural(health.articles, "article")} stored · store version ${health.generation}`;
    } catch (e) {
      $("store-info").textContent = "store unavailable";
    }
  }

  // ----------------------------------------------------------------- routing
  const articleHref = (id) => `#/article/${encodeURIComponent(id)}`;
  const storyHref = (id) => `#/story/${encodeURIComponent(id)}`;

  function parseHash() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?", 2);
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { view: parts[0] || "check", arg: parts.slice(1).join("/"), params: new URLSearchParams(query || "") };
  }

  function focusHeading(node) {
    if (!node) return;
    node.setAttribute("tabindex", "-1");
    node.focus({ preventScroll: false });
  }

  async function route() {
    const { view, arg, params } = parseHash();
    for (const link of document.querySelectorAll("[data-nav]")) {
      const current = link.dataset.nav === view || (view !== "check" && link.dataset.nav === "stories");
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    $("check-view").hidden = view !== "check";
    $("browse-view").hidden = view === "check";
    say("");
    retry = () => route();
    try {
      if (view === "check") {
        document.title = "Check · dedup";
        if (routed) focusHeading($("check-heading"));
      } else if (view === "stories") {
        await showStories(params);
      } else if (view === "story") {
        await showStory(arg);
      } else if (view === "article") {
        await showArticle(arg);
      } else {
        location.hash = "#/check";
      }
    } catch (error) {
      showError(error);
    }
    routed = true;
  }
  let routed = false;

  function browse(...children) {
    const view = $("browse-view");
    view.replaceChildren();
    append(view, children);
    focusHeading(view.querySelector("h2"));
  }

  function loading(what) {
    $("browse-view").replaceChildren(el("p", { class: "muted" }, `Loading ${what}…`));
  }

  // ------------------------------------------------------------------- check
  function parseArticle(raw) {
    // The seed format of dedup.io: first line " date YYYY-MM[-DD] Title" or the title; body after.
    const lines = raw.replace(/\r\n?/g, "\n").split("\n");
    const first = lines.findIndex((line) => line.trim());
    if (first < 0) return null;
    let title = lines[first].trim();
    let date = null;
    const m = /^\s*date\s+(\S+)\s*(.*)$/.exec(lines[first]);
    if (m) {
      date = m[1];
      title = m[2].trim();
    }
    return { title, date, text: lines.slice(first + 1).join("\n").trim() };
  }

  function contentId(text) {
    // A stable id from the content (cyrb53), so checking or adding the same text twice is the same article.
    let h1 = 0xdeadbeef;
    let h2 = 0x41c6ce57;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return `web-${(h2 >>> 0).toString(16).padStart(8, "0")}${(h1 >>> 0).toString(16).padStart(8, "0")}`;
  }

  async function loadFile(file) {
    const raw = await file.text();
    if (/\.jsonl?$/i.test(file.name)) {
      const line = raw.split(/\r?\n/).find((l) => l.trim());
      const record = JSON.parse(line || "{}");
      $("article-text").value = `${record.title || ""}\n\n${record.text || ""}`.trim();
      $("article-date").value = record.date || "";
      $("article-lang").value = record.lang || "";
      $("article-id").value = record.id === undefined ? "" : String(record.id);
    } else {
      $("article-text").value = raw;
      $("article-id").value = file.name.replace(/\.[^.]*$/, "");
    }
  }

  async function submitCheck(event) {
    event.preventDefault();
    const parsed = parseArticle($("article-text").value);
    if (!parsed) {
      say("Paste an article first: a title line, then the body.", "error");
      $("article-text").focus();
      return;
    }
    const article = {
      id: $("article-id").value.trim() || contentId($("article-text").value),
      title: parsed.title,
      text: parsed.text,
      date: $("article-date").value.trim() || parsed.date,
      lang: $("article-lang").value.trim() || null,
    };
    const add = $("article-add").checked;
    retry = () => $("check-form").requestSubmit();
    const button = $("check-submit");
    button.disabled = true;
    $("check-result").replaceChildren();
    say(add ? "Checking, then adding…" : "Checking…");
    performance.clearMarks();
    performance.clearMeasures();
    performance.mark("dedup:submit");
    try {
      const body = await api(add ? "/check-and-add" : "/check", {
        method: "POST",
        body: { articles: [article], top: Number($("article-top").value), explain: true },
      });
      performance.mark("dedup:response");
      renderVerdict(body.verdicts[0], add ? body : null);
      performance.mark("dedup:rendered");
      performance.measure("dedup:check:api", "dedup:submit", "dedup:response");
      performance.measure("dedup:check:render", "dedup:response", "dedup:rendered");
      say("");
      storeInfo();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  }

  function renderVerdict(verdict, added) {
    const dups = verdict.matches.filter((m) => m.duplicate);
    const misses = verdict.matches.filter((m) => !m.duplicate);
    const head = verdict.duplicate
      ? `Duplicate: ${dups.length} stored article${dups.length === 1 ? "" : "s"} report${dups.length === 1 ? "s" : ""} this story`
      : "New: no stored article reports this story";
    const note = [];
    if (added) {
      const stored = added.added.includes(verdict.id) ? "added to the store" : "already in the store";
      note.push(el("p", {}, `“${verdict.id}” ${stored}: `, el("a", { href: articleHref(verdict.id) }, "open it and its story")));
    }
    if (verdict.candidates_truncated) {
      note.push(el("p", { class: "muted" }, "Retrieval stopped at its limit of candidates: more duplicates may be stored (raise --candidates)."));
    }
    const result = $("check-result");
    result.replaceChildren();
    append(result, [
      el(
        "div",
        { class: `verdict ${verdict.duplicate ? "is-dup" : "is-new"}` },
        el("h2", { id: "verdict-heading", tabindex: -1 }, el("span", { class: `badge ${verdict.duplicate ? "badge-dup" : "badge-new"}` }, verdict.duplicate ? "DUPLICATE" : "NEW"), " ", head),
        note,
        rulesText(verdict.rules) ? el("p", { class: "muted", id: "verdict-rules" }, rulesText(verdict.rules)) : null,
      ),
      dups.map((m) => matchCard(verdict.article, m, { open: true, href: articleHref, level: 3 })),
      misses.length ? el("h3", { class: "section-head" }, `Near misses (${misses.length})`) : null,
      misses.map((m) => matchCard(verdict.article, m, { open: false, href: articleHref, level: 4 })),
    ]);
    $("verdict-heading").focus();
  }

  // ----------------------------------------------------------------- stories
  function storyCard(story) {
    const best = story.links.length ? Math.max(...story.links.map((l) => l.score)) : null;
    const evidence = story.size > 1
      ? `${story.links.length} verified pair${story.links.length === 1 ? "" : "s"} link${story.links.length === 1 ? "s" : ""} its articles (best score ${best === null ? "?" : best.toFixed(3)})`
      : "a single article";
    return el(
      "li",
      { class: "story", "data-story": story.id },
      el("h3", { class: "story-title" }, el("a", { href: storyHref(story.id) }, story.titles[0] || story.id)),
      el("p", { class: "muted" }, `${story.id} · ${storyMeta(story)} · ${evidence}`),
      membersByLang(story.members, articleHref, 4),
    );
  }

  function storiesQuery(params, offset) {
    const query = new URLSearchParams();
    for (const key of ["date_from", "date_to", "lang"]) if (params.get(key)) query.set(key, params.get(key));
    if (params.get("several")) query.set("several", "1");
    if (offset) query.set("offset", String(offset));
    return query;
  }

  async function showStories(params) {
    document.title = "Stories · dedup";
    loading("stories (the store is clustered once per change)");
    const offset = Math.max(0, Number(params.get("offset")) || 0);
    const q = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
    for (const key of ["date_from", "date_to", "lang"]) if (params.get(key)) q.set(key, params.get(key));
    if (params.get("several")) q.set("min_size", "2");
    const body = await api(`/stories?${q}`);

    const form = el(
      "form",
      { class: "panel filters", id: "story-filters", "aria-label": "Filter stories" },
      el("div", { class: "field small" }, el("label", { for: "f-from" }, "From"), el("input", { id: "f-from", type: "text", placeholder: "YYYY-MM-DD", value: params.get("date_from") || "" })),
      el("div", { class: "field small" }, el("label", { for: "f-to" }, "To"), el("input", { id: "f-to", type: "text", placeholder: "YYYY-MM-DD", value: params.get("date_to") || "" })),
      el(
        "div",
        { class: "field small" },
        el("label", { for: "f-lang" }, "Language"),
        el("select", { id: "f-lang" }, el("option", { value: "" }, "any"), body.langs.map((l) => el("option", { value: l, selected: params.get("lang") === l }, langLabel(l)))),
      ),
      el("label", { class: "check" }, el("input", { id: "f-several", type: "checkbox", checked: Boolean(params.get("several")) }), " Several articles only"),
      el("button", { type: "submit" }, "Filter"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      const from = $("f-from").value.trim();
      const to = $("f-to").value.trim();
      if (from) next.set("date_from", from);
      if (to) next.set("date_to", to);
      if ($("f-lang").value) next.set("lang", $("f-lang").value);
      if ($("f-several").checked) next.set("several", "1");
      location.hash = `#/stories?${next}`;
    });

    const first = body.total ? body.offset + 1 : 0;
    const last = body.offset + body.stories.length;
    const pager = el(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      body.offset > 0 ? el("a", { href: `#/stories?${storiesQuery(params, Math.max(0, body.offset - PAGE))}` }, "← Newer") : null,
      el("span", { class: "muted" }, `${first}–${last} of ${body.total} stor${body.total === 1 ? "y" : "ies"}`),
      last < body.total ? el("a", { href: `#/stories?${storiesQuery(params, last)}` }, "Older →") : null,
    );
    browse(
      el("h2", {}, "Stories"),
      el("p", { class: "muted" }, `${plural(body.articles, "stored article")} grouped into stories (store version ${body.generation}, in ${body.clustered_in_s} s), newest first.`),
      rulesText(body.rules) ? el("p", { class: "muted" }, rulesText(body.rules)) : null,
      form,
      body.stories.length ? el("ol", { class: "stories" }, body.stories.map(storyCard)) : el("p", {}, "No story matches these filters."),
      pager,
    );
  }

  function linkItem(link, index, byId) {
    const title = (id) => (byId.get(id) || {}).title || id;
    const details = el(
      "details",
      { class: "link", "data-a": link.a, "data-b": link.b },
      el("summary", {}, el("strong", {}, link.score.toFixed(3)), " ", title(link.a), el("span", { class: "muted" }, " ↔ "), title(link.b)),
    );
    let loaded = false;
    details.addEventListener("toggle", async () => {
      if (!details.open || loaded) return;
      loaded = true;
      const holder = el("p", { class: "muted" }, "Loading the evidence…");
      details.append(holder);
      try {
        const body = await api(`/evidence?a=${encodeURIComponent(link.a)}&b=${encodeURIComponent(link.b)}`);
        holder.replaceWith(matchCard(body.query, body.match, { open: true, href: articleHref, level: 4, sides: ["Article A", "Article B"] }));
      } catch (error) {
        loaded = false;
        holder.remove();
        showError(error);
      }
    });
    if (index === 0) details.open = true;
    return details;
  }

  async function showStory(id) {
    document.title = `${id} · dedup`;
    loading("the story");
    const body = await api(`/stories/${encodeURIComponent(id)}`);
    const story = body.story;
    const byId = new Map(story.members.map((m) => [m.id, m]));
    browse(
      el("p", { class: "crumbs" }, el("a", { href: "#/stories" }, "← Stories")),
      el("h2", {}, story.titles[0] || story.id),
      el("p", { class: "muted" }, `${story.id} · ${storyMeta(story)}`),
      el("h3", {}, "Articles by language"),
      membersByLang(story.members, articleHref, 4),
      el("h3", {}, "Evidence that links them"),
      story.links.length
        ? [el("p", { class: "muted" }, "The strongest verified pairs that connect every article (open one to see its passages side by side)."), el("div", { class: "links" }, story.links.map((l, i) => linkItem(l, i, byId)))]
        : el("p", {}, "A single article: nothing links it to another."),
    );
  }

  // ----------------------------------------------------------------- article
  async function showArticle(id) {
    document.title = `${id} · dedup`;
    loading("the article");
    const body = await api(`/neighbours?id=${encodeURIComponent(id)}&top=5`);
    const a = body.article;
    const url = safeUrl(a.url);
    const verdict = body.verdict;
    const story = body.story;
    browse(
      el("p", { class: "crumbs" }, el("a", { href: "#/stories" }, "← Stories")),
      el("h2", {}, a.title || a.id),
      el(
        "p",
        { class: "muted" },
        el("span", { class: "mono" }, a.id),
        ` · ${langLabel(a.lang)} · ${a.date || "undated"}`,
        a.source ? ` · ${a.source}` : "",
        url ? [" · ", el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, "original")] : null,
      ),
      el("details", { class: "text" }, el("summary", {}, "Text"), el("div", { class: "body-text" }, a.text || "(no text)")),
      el("h3", {}, "Its story"),
      el("p", {}, el("a", { href: storyHref(story.id), id: "article-story-link" }, `${story.id}: ${story.titles[0] || ""}`), el("span", { class: "muted" }, ` · ${storyMeta(story)}`)),
      membersByLang(story.members, articleHref, 4),
      el("h3", {}, "Nearest stored articles"),
      rulesText(verdict.rules) ? el("p", { class: "muted" }, rulesText(verdict.rules)) : null,
      verdict.matches.length
        ? verdict.matches.map((m) => matchCard(verdict.article, m, { open: false, href: articleHref, level: 4, sides: ["This article", "Stored"] }))
        : el("p", {}, "No other stored article is near it."),
    );
  }

  // -------------------------------------------------------------------- start
  function start() {
    setupToken();
    $("check-form").addEventListener("submit", submitCheck);
    $("article-file").addEventListener("change", async (event) => {
      const file = event.target.files && event.target.files[0];
      if (!file) return;
      try {
        await loadFile(file);
        say(`Loaded ${file.name}.`);
      } catch (error) {
        say(`Cannot read ${file.name}: ${error.message}`, "error");
      }
    });
    window.addEventListener("hashchange", route);
    storeInfo();
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
