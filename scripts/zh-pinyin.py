#!/usr/bin/env python3
"""Writes prompts/zh/pinyin.tsv: how espeak-ng (whose Mandarin voice reads pinyin with tone numbers, not
characters) should say each prompt of the Mandarin flows and each readout fragment.

Run it after changing a Mandarin prompt, then scripts/make-prompts.sh. Needs `pypinyin` (from PyPI):
    python3 -m pip install --user pypinyin && python3 scripts/zh-pinyin.py
"""
import pathlib
import subprocess
import sys

from pypinyin import Style, lazy_pinyin

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUNCT = {"，": ",", "。": ".", "？": "?", "！": "!", "、": ",", "：": ",", "；": ","}

# Readout fragments (media/src/readout.rs, zh): key -> characters.
READOUT = {
    **{f"num/{d}": c for d, c in enumerate("零一二三四五六七八九")},
    "num/10": "十",
    "num/hundred": "百",
    "num/thousand": "千",
    "num/wan": "万",
    "num/yi": "亿",
    "num/point": "点",
    "currency/yuan": "元",
    "currency/jiao": "角",
    "currency/fen": "分",
    "currency/usd": "美元",
    "currency/eur": "欧元",
    "currency/minus": "负",
    "digit/star": "星号",
    "digit/pound": "井号",
}


def pinyin(text: str) -> str:
    text = "".join(PUNCT.get(c, c) for c in text)
    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(s.strip() for s in syllables if s.strip()).replace(" ,", ",").replace(" .", ".").replace(" ?", "?")


def main() -> int:
    rows = {}
    for flow in sorted((ROOT / "flows").glob("*.toml")):
        if 'language = "zh"' not in flow.read_text(encoding="utf-8"):
            continue
        out = subprocess.run(
            ["cargo", "run", "-q", "--bin", "voxgate", "--", "flow", "prompts", str(flow)],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        for line in out.splitlines():
            key, text = line.split("\t", 1)
            rows[key] = (text, pinyin(text))
    for key, text in READOUT.items():
        rows[key] = (text, pinyin(text))
    dest = ROOT / "prompts/zh/pinyin.tsv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as f:
        for key in sorted(rows):
            text, py = rows[key]
            f.write(f"{key}\t{text}\t{py}\n")
    print(f"{len(rows)} entries written to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
