#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into corpus/<target>/ (run from fuzz/).

    python3 seed.py                               # JSON, FHIRPath, queries, patches
    python3 seed.py --server http://127.0.0.1:8080  # also XML, rendered by a running Hearth

Seeds: 120 official R4 examples under 20 kB (../../shared/fhir/r4/examples),
150 of R4's SearchParameter expressions each followed by a Patient, typical
queries for each type byte, and JSON Patches of every operation. With
--server, each JSON seed is created on that server and read back as XML.
"""
import glob
import json
import os
import random
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "shared", "fhir", "r4", "examples")
random.seed(1)


def corpus(target):
    path = os.path.join(HERE, "corpus", target)
    os.makedirs(path, exist_ok=True)
    return path


examples = sorted(f for f in glob.glob(os.path.join(EXAMPLES, "*.json")) if os.path.getsize(f) < 20000)
chosen = random.sample(examples, min(120, len(examples)))
for f in chosen:
    with open(f, "rb") as src, open(os.path.join(corpus("parse_json"), os.path.basename(f)), "wb") as dst:
        dst.write(src.read())

with open(os.path.join(HERE, "..", "fhir-profiles", "search-parameters.json")) as f:
    definitions = json.load(f)
expressions = sorted({e["resource"]["expression"] for e in definitions["entry"] if e["resource"].get("expression")})
with open(os.path.join(EXAMPLES, "Patient-example.json")) as f:
    patient = f.read()
for i, expression in enumerate(random.sample(expressions, 150)):
    with open(os.path.join(corpus("fhirpath"), str(i)), "w") as f:
        f.write(expression.split(" | ")[0] + "\n" + patient)

queries = ["code=http://loinc.org|8867-4&date=ge2020", "subject:Patient.name=smith&_sort=-date",
           "_has:Observation:patient:code=1234", "value-quantity=gt5.4|http://unitsofmeasure.org|mg",
           "_include=Observation:subject&_revinclude:iterate=Provenance:target",
           "name:contains=ann,bob&birthdate=lt1970-01", "_id=a,b,c&_lastUpdated=ge2020-01-01T00:00:00Z",
           "code-value-quantity=http://loinc.org|8480-6$gt100", "_text=cancer&_content=lung",
           "_count=10&_total=accurate&_summary=count", "identifier=http://x|1&_tag:not=http://y|2",
           "general-practitioner:missing=true", "subject.organization.partof.name=x"]
for i, query in enumerate(queries):
    for t in range(2):
        with open(os.path.join(corpus("search_query"), f"{i}_{t}"), "wb") as f:
            f.write(bytes([t * 3]) + query.encode())

document = json.dumps(json.loads(patient)).encode()
patches = [[{"op": "add", "path": "/active", "value": False}],
           [{"op": "copy", "from": "/name/0", "path": "/name/-"}],
           [{"op": "move", "from": "/name/0", "path": "/contact/0"}],
           [{"op": "test", "path": "/id", "value": "example"}, {"op": "remove", "path": "/name/1"}],
           [{"op": "replace", "path": "", "value": {"a": [1, 2]}}]]
for i, patch in enumerate(patches):
    with open(os.path.join(corpus("json_patch"), str(i)), "wb") as f:
        f.write(document + b"\0" + json.dumps(patch).encode())

if "--server" in sys.argv:
    base = sys.argv[sys.argv.index("--server") + 1].rstrip("/")
    for i, f in enumerate(chosen):
        with open(f, "rb") as src:
            body = src.read()
        resource_type = json.loads(body)["resourceType"]
        request = urllib.request.Request(f"{base}/{resource_type}", data=body,
                                         headers={"Content-Type": "application/fhir+json"})
        try:
            created = json.load(urllib.request.urlopen(request))
            read = urllib.request.Request(f"{base}/{resource_type}/{created['id']}",
                                          headers={"Accept": "application/fhir+xml"})
            with open(os.path.join(corpus("parse_xml"), f"{i}.xml"), "wb") as out:
                out.write(urllib.request.urlopen(read).read())
        except urllib.error.HTTPError:
            continue

for target in sorted(os.listdir(os.path.join(HERE, "corpus"))):
    print(target, len(os.listdir(os.path.join(HERE, "corpus", target))))
