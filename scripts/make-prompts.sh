#!/usr/bin/env bash
# Renders the bundled prompt sets as 8 kHz 16-bit mono WAV: prompts/en/ (the prompts of the English flows
# plus the readout fragments: numbers, digits, currencies) with hold music, and prompts/zh/ from
# prompts/zh/pinyin.tsv (espeak-ng's Mandarin voice reads pinyin; scripts/zh-pinyin.py writes that file from
# the Mandarin flows).
#
# Needs espeak-ng, sox and cargo. Output is deterministic (no dither), so re-running it only
# changes files whose text or settings changed. Usage: scripts/make-prompts.sh [EN_DIR [ZH_DIR]]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../prompts/en}"
voice="en-us"
wpm=150

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Prompt texts, for the call transcript (what voxgate said) and for QA.
texts="$tmp/texts.tsv"
: >"$texts"

# speak KEY TEXT: KEY is the path below $out without .wav (e.g. num/7).
speak() {
    local key="$1" text="$2"
    mkdir -p "$out/$(dirname "$key")"
    printf '%s\t%s\n' "$key" "$text" >>"$texts"
    espeak-ng -v "$voice" -s "$wpm" -w "$tmp/raw.wav" -- "$text"
    # -D: no dither, for reproducible files. Trim silence at both ends (reverse trick),
    # resample to 8 kHz, peak-normalise to -3 dBFS.
    sox -D "$tmp/raw.wav" -r 8000 -b 16 -c 1 -e signed-integer "$out/$key.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        rate -v 8k norm -3
}

# Every prompt of every bundled English flow (`voxgate flow prompts` prints key<TAB>text).
for flow in "$here"/../flows/*.toml; do
    if [ "$(sed -n 's/^language *= *"\(.*\)"/\1/p' "$flow" | head -n1)" != "en" ]; then
        continue
    fi
    while IFS=$'\t' read -r key text; do
        speak "$key" "$text"
    done < <(cd "$here/.." && cargo run -q --bin voxgate -- flow prompts "$flow")
done

ones=(zero one two three four five six seven eight nine ten eleven twelve thirteen
      fourteen fifteen sixteen seventeen eighteen nineteen)
for n in "${!ones[@]}"; do
    speak "num/$n" "${ones[$n]}"
done
tens=([20]=twenty [30]=thirty [40]=forty [50]=fifty [60]=sixty [70]=seventy [80]=eighty [90]=ninety)
for n in "${!tens[@]}"; do
    speak "num/$n" "${tens[$n]}"
done
for word in hundred thousand million billion point; do
    speak "num/$word" "$word"
done
for word in dollar dollars euro euros cent cents and minus; do
    speak "currency/$word" "$word"
done
speak digit/star "star"
speak digit/pound "pound"

# Hold music: four 2 s chords (C, Am, F, G), each faded in and out so the 8 s loop has no
# click at the seam; peak about -12 dBFS.
mkdir -p "$out/music"
chords=("261.63 329.63 392.00" "220.00 261.63 329.63" "174.61 220.00 261.63" "196.00 246.94 293.66")
parts=()
for i in "${!chords[@]}"; do
    read -r a b c <<<"${chords[$i]}"
    sox -D -n -r 8000 -b 16 -c 3 "$tmp/chord$i.wav" \
        synth 2 sine "$a" sine "$b" sine "$c" remix - fade q 0.4 2 0.6
    parts+=("$tmp/chord$i.wav")
done
sox -D "${parts[@]}" -r 8000 -b 16 -c 1 -e signed-integer "$out/music/hold.wav" norm -12

sort "$texts" >"$out/texts.tsv"
echo "prompts written to $out"

# Mandarin. Every prompt of every Mandarin flow must have a pronunciation.
zh_out="${2:-$here/../prompts/zh}"
pinyin="$here/../prompts/zh/pinyin.tsv"
for flow in "$here"/../flows/*.toml; do
    if [ "$(sed -n 's/^language *= *"\(.*\)"/\1/p' "$flow" | head -n1)" != "zh" ]; then
        continue
    fi
    while IFS=$'\t' read -r key text; do
        if ! grep -q "^$key"$'\t'"$text"$'\t' "$pinyin"; then
            echo "error: $key of $flow has no current pinyin; run scripts/zh-pinyin.py" >&2
            exit 1
        fi
    done < <(cd "$here/.." && cargo run -q --bin voxgate -- flow prompts "$flow")
done
: >"$tmp/zh-texts.tsv"
while IFS=$'\t' read -r key text py; do
    mkdir -p "$zh_out/$(dirname "$key")"
    printf '%s\t%s\n' "$key" "$text" >>"$tmp/zh-texts.tsv"
    espeak-ng -v cmn-latn-pinyin+f2 -s 135 -w "$tmp/raw.wav" -- "$py"
    sox -D "$tmp/raw.wav" -r 8000 -b 16 -c 1 -e signed-integer "$zh_out/$key.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        rate -v 8k norm -3
done <"$pinyin"
mkdir -p "$zh_out/music"
cp "$out/music/hold.wav" "$zh_out/music/hold.wav"
sort "$tmp/zh-texts.tsv" >"$zh_out/texts.tsv"
echo "prompts written to $zh_out"
