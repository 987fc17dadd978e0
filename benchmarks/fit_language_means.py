"""Fit the per-language mean article vectors of the default model: ``dedup/language_means.json``.

Data (read from ``--data``, default ``../shared/data``; never copied into the repo):
``ntrex_dev.jsonl``, NTREX-128 news articles, each human-translated into ~20 languages
(CC BY-SA 4.0). Only the tune half of the stories is used (the stories that
:func:`dedup.evaluation.data.held_out_story` does not hold out), so ``dedup eval`` reports the
effect on stories the means never saw.

Every story is present in every language, so a language's mean is that language's offset
plus the same average story: the difference between two languages' means is the language
alone. See :mod:`dedup.embedding.centring`.

Run: ``python -m benchmarks.fit_language_means [--data DIR] [--out dedup/language_means.json]``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from dedup.config import Config
from dedup.embedding.centring import LanguageCentring
from dedup.embedding.embed import load_encoder
from dedup.embedding.naming import encoder_name, parse_space
from dedup.evaluation.data import default_cache_dir, embed_cached, held_out_story, read_labelled
from dedup.evaluation.metrics import cross_language_recall

logger = logging.getLogger("benchmarks.fit_language_means")

VERSION = 2


def main() -> None:
    """Fit, report held-out recall@1 with and without centring, write the means."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("dedup/language_means.json"))
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    config = Config()
    encoder = load_encoder(config.model)
    articles, stories = read_labelled(args.data / "ntrex_dev.jsonl")
    items = embed_cached(articles, encoder, cache=args.cache, label="ntrex_dev", centring=None)
    tune = [i for i, s in enumerate(stories) if not held_out_story(s)]
    held = [i for i, s in enumerate(stories) if held_out_story(s)]
    vectors = np.vstack([it.vector for it in items]).astype(np.float32)
    langs = [it.article.lang for it in items]
    # The means apply to the default model on every backend: fitted on the int8 vectors the
    # default path gives, they serve the fp32 ones (OpenVINO, torch) too.
    space = parse_space(encoder.name)
    fp32 = encoder_name(space.model, prompt=space.prompt)
    centring = LanguageCentring.fit(
        list(dict.fromkeys([encoder.name, fp32])),
        vectors[tune],
        [langs[i] for i in tune],
        version=VERSION,
        fitted_on=f"ntrex_dev tune half: {len(tune)} articles, {len({stories[i] for i in tune})} stories",
    )
    raw = vectors[held]
    centred = centring.apply(raw, [langs[i] for i in held])
    for name, v in (("raw", raw), ("centred", centred)):
        r = cross_language_recall(v @ v.T, [stories[i] for i in held], [langs[i] for i in held], (1, 10))
        worst = min(r.by_pair.items(), key=lambda kv: kv[1][0][0])
        logger.info(
            "held half (%d articles), %s cosine: recall@1 %.4f, recall@10 %.4f, worst pair %s %.3f",
            len(held),
            name,
            r.recall[0],
            r.recall[1],
            worst[0],
            worst[1][0][0],
        )
    args.out.write_text(json.dumps(centring.to_dict(), separators=(",", ":")) + "\n", "utf-8")
    logger.info("wrote %s (%d languages) in %.1f s", args.out, len(centring.means), time.perf_counter() - started)


if __name__ == "__main__":
    main()
