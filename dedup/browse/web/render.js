/* DOM builders shared by the story browser (app.js) and the static report (report.js).
 *
 * Every piece of article text goes into the page as a text node (el() never parses HTML),
 * so an article that holds "<script>" is shown as text, never run.
 * A match's aligned passage pairs {a, b} index the passages of the query article (a) and
 * of the matched article (b); both columns highlight them, numbered alike, and hovering or
 * focusing one passage of a pair highlights its partner.
 */
"use strict";

const Dedup = (() => {
  const PAIR_TINTS = 6;

  /** An element: attrs are attributes (null/false skip), children strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "on") {
        for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
      } else if (key === "class") {
        node.className = value;
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const langNames = (() => {
    try {
      return new Intl.DisplayNames(["en"], { type: "language" });
    } catch (e) {
      return null;
    }
  })();

  /** "fr (French)", or the code alone when unknown. */
  function langLabel(code) {
    if (!code) return "unknown language";
    let name = null;
    try {
      name = langNames ? langNames.of(code) : null;
    } catch (e) {
      name = null;
    }
    return name && name !== code ? `${code} (${name})` : code;
  }

  /** A link only for http(s) addresses; anything else (javascript:, data:) is not a link. */
  function safeUrl(value) {
    if (!value) return null;
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function chips(values, label) {
    if (!values || !values.length) return el("span", { class: "muted" }, "none");
    return el("ul", { class: "chips", "aria-label": label }, values.map((v) => el("li", {}, v)));
  }

  function fact(term, ...value) {
    return [el("dt", {}, term), el("dd", {}, ...value)];
  }

  function fixed(x, digits) {
    return typeof x === "number" ? x.toFixed(digits) : "?";
  }

  function articleLabel(view, side) {
    const meta = [langLabel(view.lang), view.date || "undated"].join(", ");
    return [el("span", { class: "side" }, side), " ", el("span", { class: "mono" }, view.id), el("span", { class: "muted" }, ` · ${meta}`)];
  }

  const SIDES = ["Checked", "Stored"];

  /** One column of passages; aligned ones numbered and tinted by pair. */
  function passageColumn(view, pairOf, side, headingLevel, label) {
    const list = el("ol", { class: "passages" });
    (view.passages || []).forEach((text, index) => {
      const pair = pairOf.get(index);
      if (pair === undefined) {
        list.append(el("li", { class: "passage" }, text));
        return;
      }
      const item = el(
        "li",
        {
          class: `passage aligned tint-${pair.number % PAIR_TINTS}`,
          tabindex: 0,
          "data-pair": pair.number,
          title: `aligned pair ${pair.number + 1}: similarity ${fixed(pair.similarity, 2)}`,
          "aria-label": `aligned pair ${pair.number + 1}, similarity ${fixed(pair.similarity, 2)}: ${text}`,
        },
        el("span", { class: "pair-no", "aria-hidden": "true" }, String(pair.number + 1)),
        el("span", { class: "passage-text" }, text),
      );
      list.append(item);
    });
    return el(
      "div",
      { class: `column column-${side}` },
      el(`h${headingLevel}`, { class: "column-head" }, ...articleLabel(view, label)),
      list,
    );
  }

  /** Hovering or focusing a passage lights up its partner in the other column. */
  function linkPairs(card) {
    const light = (pair, on) => {
      for (const node of card.querySelectorAll(`[data-pair="${pair}"]`)) node.classList.toggle("active", on);
    };
    for (const node of card.querySelectorAll("[data-pair]")) {
      const pair = node.getAttribute("data-pair");
      node.addEventListener("mouseenter", () => light(pair, true));
      node.addEventListener("mouseleave", () => light(pair, false));
      node.addEventListener("focus", () => light(pair, true));
      node.addEventListener("blur", () => light(pair, false));
    }
  }

  /** The two articles side by side, aligned passages highlighted. */
  function columns(query, match, headingLevel, sides) {
    const [leftLabel, rightLabel] = sides || SIDES;
    const left = new Map();
    const right = new Map();
    // Pairs are numbered in the reading order of the checked article (the left column).
    const pairs = [...(match.aligned || [])].sort((x, y) => x.a - y.a);
    pairs.forEach((p, number) => {
      left.set(p.a, { number, similarity: p.similarity });
      right.set(p.b, { number, similarity: p.similarity });
    });
    const node = el(
      "div",
      { class: "columns" },
      passageColumn(query, left, "a", headingLevel, leftLabel),
      passageColumn(match.article, right, "b", headingLevel, rightLabel),
    );
    linkPairs(node);
    return node;
  }

  /** "1 passage", "2 passages"; "1 story", "3 stories". */
  function plural(n, word) {
    if (n === 1) return `${n} ${word}`;
    return /[^aeiou]y$/.test(word) ? `${n} ${word.slice(0, -1)}ies` : `${n} ${word}s`;
  }

  /** Why the match is or is not a duplicate: the server's sentence, or one made from the score. */
  function reasonOf(match) {
    if (match.decision && match.decision.reason) return match.decision.reason;
    return `${match.duplicate ? "duplicate" : "not a duplicate"}: score ${fixed(match.score, 3)}`;
  }

  /** The rules, in words: "duplicate when the score reaches 0.5 and the dates are at most 7 days apart". */
  function rulesText(rules) {
    if (!rules || rules.threshold === undefined || rules.threshold === null) return null;
    const window = rules.max_date_gap_days;
    const dates = window === undefined || window === null ? "" : ` and the dates are at most ${plural(window, "day")} apart`;
    return `Two articles are duplicates when their score reaches the threshold ${rules.threshold}${dates}.`;
  }

  /** The evidence on one match: the decision in words, score, date gap, languages, shared names and numbers. */
  function facts(match) {
    const gap = match.date_gap_days === null || match.date_gap_days === undefined ? "unknown (a date is missing)" : plural(match.date_gap_days, "day");
    const langs = (match.lang_pair || []).map((l) => l || "?").join(" → ");
    const aligned = match.aligned || [];
    const rule = match.decision ? match.decision.rule : null;
    const agencies = match.agency_tags || [];
    return el(
      "dl",
      { class: "facts" },
      fact("Decision", el("span", { class: `reason reason-${rule || "score"}` }, reasonOf(match))),
      fact("Score", el("strong", { class: "score" }, fixed(match.score, 3))),
      fact("Date gap", gap),
      fact("Languages", langs),
      fact("Matching passages", `${aligned.length} (${Math.round(100 * (match.aligned_fraction || 0))}% of the shorter article)`),
      fact("Overall similarity", fixed(match.article_similarity, 3)),
      fact("Shared names", chips(match.names_shown || match.shared_names, "shared names")),
      agencies.length ? fact("News agencies (not names)", chips(agencies, "news agencies")) : null,
      fact("Shared numbers", chips(match.shared_numbers, "shared numbers")),
    );
  }

  /**
   * One match as a card. opts: href(id) -> link to an article or null; open: show the
   * columns now (else in a <details> built when first opened); level: heading level;
   * sides: the two columns' labels (default "Checked", "Stored").
   */
  function matchCard(query, match, opts) {
    const options = opts || {};
    const level = options.level || 3;
    const href = options.href ? options.href(match.id) : null;
    const title = match.title || (match.article && match.article.title) || match.id;
    const kind = match.duplicate ? "duplicate" : "near miss";
    const head = el(
      "div",
      { class: "match-head" },
      el(`h${level}`, { class: "match-title" }, href ? el("a", { href }, title) : title),
      el("span", { class: `badge ${match.duplicate ? "badge-dup" : "badge-miss"}` }, kind),
      el("span", { class: "mono muted" }, match.id),
    );
    const card = el("article", { class: `match ${match.duplicate ? "is-dup" : "is-miss"}`, "data-id": match.id }, head, facts(match));
    const body = () =>
      match.article
        ? columns(query, match, level + 1, options.sides)
        : el("p", { class: "muted" }, "This stored article is no longer in the store (replaced since the check).");
    if (options.open) {
      card.append(body());
    } else {
      const n = (match.aligned || []).length;
      const details = el("details", { class: "more" }, el("summary", {}, `Show the two articles side by side (${plural(n, "matching passage")})`));
      details.addEventListener("toggle", () => {
        if (details.open && details.childElementCount === 1) details.append(body());
      }, { once: false });
      card.append(details);
    }
    return card;
  }

  /** A story's members grouped by language. href(id) -> link or null. */
  function membersByLang(members, href, headingLevel) {
    const groups = new Map();
    for (const m of members) {
      const key = m.lang || "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(m);
    }
    const keys = [...groups.keys()].sort();
    return el(
      "div",
      { class: "langs" },
      keys.map((key) =>
        el(
          "section",
          { class: "lang-group" },
          el(`h${headingLevel}`, { class: "lang-head" }, `${langLabel(key)} · ${groups.get(key).length}`),
          el(
            "ul",
            { class: "members" },
            groups.get(key).map((m) => {
              const link = href ? href(m.id) : null;
              const url = safeUrl(m.url);
              return el(
                "li",
                {},
                link ? el("a", { href: link }, m.title || m.id) : el("span", {}, m.title || m.id),
                el("span", { class: "muted" }, ` · ${m.date || "undated"}`, m.source ? ` · ${m.source}` : ""),
                url ? [" · ", el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, "original")] : null,
                el("div", { class: "mono muted small" }, m.id),
              );
            }),
          ),
        ),
      ),
    );
  }

  function dateSpan(story) {
    if (!story.first_date) return "undated";
    return story.first_date === story.last_date ? story.first_date : `${story.first_date} – ${story.last_date}`;
  }

  /** "story-0001 · 2 articles · en, fr · 2025-01-12" */
  function storyMeta(story) {
    const n = story.size || story.article_ids.length;
    return `${plural(n, "article")} · ${story.langs.join(", ") || "?"} · ${dateSpan(story)}`;
  }

  return { el, append, chips, langLabel, safeUrl, matchCard, columns, facts, membersByLang, storyMeta, dateSpan, fixed, plural, rulesText, reasonOf };
})();
