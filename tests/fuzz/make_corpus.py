#!/usr/bin/python3
"""Write the conformance corpus's raw requests as seed files for the fuzzers.

usage: make_corpus.py OUTDIR [JSON]
fuzz_parser seeds get two leading settings bytes; fuzz_chunked seeds are the
bodies after the head of chunked requests, with one leading split byte.
"""
import base64
import json
import os
import sys


def main():
    out = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
        "shared", "conformance", "gunicorn-requests.json")
    with open(src, encoding="utf-8") as fp:
        cases = json.load(fp)["cases"]
    for sub in ("parser", "chunked"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for c in cases:
        raw = base64.b64decode(c["raw_b64"])
        st = c.get("settings", {})
        f0 = 0
        f0 |= 8 if st.get("permit_obsolete_folding") else 0
        f0 |= 16 if st.get("strip_header_spaces") else 0
        f0 |= 32 if st.get("permit_unconventional_http_method") else 0
        f0 |= 128
        f1 = 0x3f | (0xc0 if st.get("proxy_protocol") else 0)
        name = "%s_%s" % (c["group"], c["name"])
        with open(os.path.join(out, "parser", name), "wb") as fp:
            fp.write(bytes([f0, f1]) + raw)
        head_end = raw.find(b"\r\n\r\n")
        if b"chunked" in raw[:head_end].lower() and head_end >= 0:
            with open(os.path.join(out, "chunked", name), "wb") as fp:
                fp.write(bytes([5]) + raw[head_end + 4:])


if __name__ == "__main__":
    main()
