/* The static report written by `dedup cluster --html FILE`: reads its data from the
 * JSON block #report-data and lists the stories with render.js. No network. */
"use strict";

(() => {
  const { el, append, langLabel, matchCard, membersByLang, storyMeta, plural } = Dedup;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE = 50;

  function evidenceFor(link) {
    const match = data.evidence[`${link.a}\n${link.b}`];
    if (!match) return null;
    return { query: data.articles[link.a], match: { ...match, article: data.articles[link.b] } };
  }

  function linkItem(link, byId) {
    const title = (id) => (byId.get(id) || {}).title || id;
    const found = data.evidence[`${link.a}\n${link.b}`];
    const reason = found ? Dedup.reasonOf(found) : null;
    const details = el(
      "details",
      { class: "link", "data-a": link.a, "data-b": link.b },
      el(
        "summary",
        {},
        el("strong", {}, link.score.toFixed(3)),
        " ",
        title(link.a),
        el("span", { class: "muted" }, " ↔ "),
        title(link.b),
        reason ? el("span", { class: "muted" }, ` · ${reason}`) : null,
      ),
    );
    details.addEventListener("toggle", () => {
      if (!details.open || details.childElementCount > 1) return;
      const found = evidenceFor(link);
      details.append(found ? matchCard(found.query, found.match, { open: true, level: 5, sides: ["Article A", "Article B"] }) : el("p", {}, "No evidence recorded."));
    });
    return details;
  }

  /** One story, collapsed: its title and counts first; members and evidence built when opened. */
  function storyCard(story) {
    const byId = new Map(story.members.map((m) => [m.id, m]));
    const details = el(
      "details",
      { class: "story-details" },
      el(
        "summary",
        {},
        el("h3", { class: "story-title" }, story.titles[0] || story.id),
        el("span", { class: "muted story-meta" }, `${story.id} · ${storyMeta(story)}`),
      ),
    );
    details.addEventListener("toggle", () => {
      if (!details.open || details.childElementCount > 1) return;
      append(details, [
        membersByLang(story.members, null, 4),
        story.links.length
          ? [
              el("h4", {}, `Evidence: ${plural(story.links.length, "verified pair")} link${story.links.length === 1 ? "s" : ""} its articles`),
              el("div", { class: "links" }, story.links.map((l) => linkItem(l, byId))),
            ]
          : null,
      ]);
    });
    return el("li", { class: "story", "data-story": story.id }, details);
  }

  const state = { lang: "", several: false, shown: PAGE };

  function filtered() {
    return data.stories.filter((s) => (!state.lang || s.langs.includes(state.lang)) && (!state.several || s.size > 1));
  }

  function renderList() {
    const stories = filtered();
    // Every story starts collapsed (title and counts only): a long report stays short until opened.
    const list = el("ol", { class: "stories", id: "report-stories" }, stories.slice(0, state.shown).map(storyCard));
    const rest = stories.length - state.shown;
    const more = rest > 0
      ? el("button", { type: "button", id: "r-more", on: { click: () => { state.shown += PAGE; renderList(); } } }, `Show ${Math.min(PAGE, rest)} more (${rest} left)`)
      : null;
    document.getElementById("r-count").textContent = `${stories.length} of ${data.stories.length} stories, biggest first`;
    const holder = document.getElementById("r-list");
    holder.replaceChildren();
    append(holder, [list, more]);
  }

  function render() {
    const update = () => {
      state.shown = PAGE;
      renderList();
    };
    const langSelect = el(
      "select",
      { id: "r-lang", on: { change: (e) => { state.lang = e.target.value; update(); } } },
      el("option", { value: "" }, "any"),
      Object.keys(data.summary.langs).sort().map((l) => el("option", { value: l }, langLabel(l))),
    );
    const several = el("input", { id: "r-several", type: "checkbox", on: { change: (e) => { state.several = e.target.checked; update(); } } });
    const view = document.getElementById("report-view");
    view.replaceChildren(
      el(
        "div",
        { class: "panel filters", role: "group", "aria-label": "Filter stories" },
        el("div", { class: "field small" }, el("label", { for: "r-lang" }, "Language"), langSelect),
        el("label", { class: "check" }, several, " Several articles only"),
        el("span", { class: "muted", id: "r-count", "aria-live": "polite" }),
      ),
      el("div", { id: "r-list" }),
    );
    renderList();
  }

  render();
})();
