"""What the claim check flags in human-written summaries: a false-flag control for the claim-level checks.

Each TweetSumm abstractive summary sentence (written by people who read the dialog: genuine, in their own
words, sometimes wrong) is checked as a claim, the way a model's statement is: against the two extractive
spans of the same dialog that share most words with it, as a model cites the quotes behind its statement
(`unsupported_claim_detail`, the check a grounded claim passes once its quotes are found), and for a name
against the whole dialog (`unsaid_name`: a capitalized word the dialog never says). Prints how many
sentences each reason flags, and with `--show REASON` the flagged sentences and their spans, to read
whether a flag is a false one or the summary's own mistake.

    .venv/bin/python -m bench.grounding.paraphrase
    .venv/bin/python -m bench.grounding.paraphrase --show negated_in_evidence

Needs the shared data folder beside the checkout (TweetSumm); a development set: the checks were tuned on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

from app.grounding.align import PreparedTranscript
from app.grounding.claims import unsaid_name, unsupported_claim_detail
from app.schemas.transcript import Role, Utterance
from bench.datasets import read_tweetsumm, shared_data_dir

_WORD = re.compile(r"[a-z]{3,}")
CITED_SPANS = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show", metavar="REASON", help="print the sentences this reason flags, with their spans")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("the shared data folder is not beside the checkout", file=sys.stderr)
        return 2
    reasons: Counter[str] = Counter()
    shown = 0
    for record in read_tweetsumm(data / "tweetsumm" / "tweetsumm_train_joined.jsonl"):
        texts = {turn["tweet_id"]: turn["text"] for turn in record["turns"]}
        spans = list(dict.fromkeys(
            texts[span["tweet_id"]][span["char_span"][0] : span["char_span"][1]]
            for summary in record["extractive_summaries"] for span in summary or [] if span["tweet_id"] in texts
        ))
        if not spans:
            continue
        dialog = PreparedTranscript([Utterance(index=index, speaker="speaker", role=Role.unknown, text=text)
                                     for index, text in enumerate(texts.values()) if text.strip()])
        for summary in record["abstractive_summaries"]:
            for sentence in summary:
                words = set(_WORD.findall(sentence.lower()))
                cited = sorted(spans, key=lambda span: -len(words & set(_WORD.findall(span.lower()))))[:CITED_SPANS]
                reason = unsupported_claim_detail(sentence, cited)
                name = unsaid_name(sentence, dialog) if reason is None else None
                reasons[reason.value if reason else "unsupported_name" if name else "grounded"] += 1
                if args.show and (reason.value if reason else "unsupported_name" if name else None) == args.show:
                    shown += 1
                    print(f"{shown}. {sentence!r}\n   on {' || '.join(repr(span) for span in cited)}")
    total = sum(reasons.values())
    print(f"{total} summary sentences")
    for reason, count in reasons.most_common():
        print(f"  {reason:<22} {count:>6}  {100 * count / total:5.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
