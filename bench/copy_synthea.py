#!/usr/bin/env python3
"""Makes COPIES copies of Synthea's patient files with new ids, for
measuring at a larger scale with the same shape of data.

    copy_synthea.py SOURCE_DIR OUT_DIR COPIES

The shared hospital and practitioner files are written once; each patient
file is written COPIES times, the first as it is and every other with each
UUID in it (fullUrls, ids, references) replaced by one derived from it and
the copy's number, so every copy is a different set of patients with the
same records. The UUIDs of the shared files (which conditional references such
as Location?identifier=…|UUID name) are left alone: all copies share the
practitioners, organizations and locations.
"""

import hashlib
import os
import re
import sys

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def renamed(copy, shared):
    def rename(match):
        if match.group(0) in shared:
            return match.group(0)
        digest = hashlib.md5(match.group(0) + b"/%d" % copy).hexdigest()
        return ("%s-%s-%s-%s-%s" % (digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])).encode()

    return rename


def main():
    source, out, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    shared_ids = set()
    for name in os.listdir(source):
        if "hospitalInformation" in name or "practitionerInformation" in name:
            with open(os.path.join(source, name), "rb") as f:
                shared_ids.update(UUID.findall(f.read()))
    for name in sorted(os.listdir(source)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(source, name), "rb") as f:
            data = f.read()
        shared = "hospitalInformation" in name or "practitionerInformation" in name
        for copy in range(1 if shared else copies):
            text = data if copy == 0 else UUID.sub(renamed(copy, shared_ids), data)
            target = name if copy == 0 else "%s-copy%d.json" % (name[: -len(".json")], copy)
            with open(os.path.join(out, target), "wb") as f:
                f.write(text)


if __name__ == "__main__":
    main()
