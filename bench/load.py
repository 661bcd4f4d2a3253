#!/usr/bin/env python3
"""Loads N Patients with ids bench-0 … bench-(N-1) by PUT (update as create)."""
import json
import sys
import http.client
from concurrent.futures import ThreadPoolExecutor

host, port, n, body_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
template = json.load(open(body_path))


def load(chunk):
    conn = http.client.HTTPConnection(host, port)
    for i in chunk:
        resource = dict(template, id=f"bench-{i}")
        conn.request("PUT", f"/Patient/bench-{i}", json.dumps(resource),
                     {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
        response = conn.getresponse()
        response.read()
        if response.status not in (200, 201):
            raise SystemExit(f"PUT Patient/bench-{i} answered {response.status}")
    conn.close()


chunks = [range(start, n, 8) for start in range(8)]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(load, chunks))
print(f"loaded {n} Patients")
