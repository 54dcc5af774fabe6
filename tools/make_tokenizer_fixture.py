#!/usr/bin/python3
"""Writes tests/fixtures/t5_layout_spiece.model and t5_layout_spiece_expected.json with SentencePiece's own
command-line tools (Debian package `sentencepiece`: spm_train, spm_encode, spm_decode), independently of
linfuse's C++ wrapper.

No real T5 spiece.model ships in any Debian package, and model hubs are out of reach, so this is the
closest stand-in: a unigram model trained by the official `spm_train` with the settings of T5's
spiece.model (pad 0, eos 1, unk 2, no bos, nmt_nfkc normalization, pieces of at most 16 characters,
character coverage 0.9999, no sentinels inside the model) on tests/fixtures/tokenizer_corpus.txt, with 400
pieces instead of 32000. The JSON holds, for a few probe sentences, the ids that `spm_encode` gives and the
text that `spm_decode` gives back, so the C++ test checks linfuse's encode/decode against the CLI.

Run: apt-get install sentencepiece && /usr/bin/python3 tools/make_tokenizer_fixture.py
"""
import json, os, subprocess, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
CORPUS = os.path.join(FIXTURES, "tokenizer_corpus.txt")
PIECES = 400

PROBES = [
    "The quick brown fox jumps over the lazy dog.",
    "Task vectors can be merged into one multi-task model.",
    "An unseen word: zyxwvut, and numbers 12345.",
    "  extra   spaces   are   normalized  ",
    "Symbols that never occur: \u00e9\u00e8 \u4e2d\u6587 \u2603",
    "",
]


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout


def main():
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spiece")
        run(["spm_train", f"--input={CORPUS}", f"--model_prefix={prefix}", "--model_type=unigram",
             f"--vocab_size={PIECES}", "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1",
             "--character_coverage=0.9999", "--normalization_rule_name=nmt_nfkc",
             "--max_sentencepiece_length=16", "--num_threads=1", "--minloglevel=1"])
        model = prefix + ".model"
        with open(model, "rb") as f:
            model_bytes = f.read()
        probes = []
        for text in PROBES:
            ids_line = run(["spm_encode", f"--model={model}", "--output_format=id"], stdin=text + "\n").rstrip("\n")
            ids = [int(x) for x in ids_line.split()] if ids_line else []
            pieces = run(["spm_encode", f"--model={model}", "--output_format=piece"], stdin=text + "\n").rstrip("\n").split()
            decoded = run(["spm_decode", f"--model={model}", "--input_format=id"], stdin=ids_line + "\n").rstrip("\n")
            probes.append({"text": text, "ids": ids, "pieces": pieces, "decoded": decoded})
    with open(os.path.join(FIXTURES, "t5_layout_spiece.model"), "wb") as f:
        f.write(model_bytes)
    expected = {"pieces_in_model": PIECES, "pad_id": 0, "eos_id": 1, "unk_id": 2, "probes": probes}
    with open(os.path.join(FIXTURES, "t5_layout_spiece_expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
