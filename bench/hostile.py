#!/usr/bin/env python3
"""Sends hostile and heavy requests to a running Hearth, as an attacker or a
careless client would, and reports what came back.

    bench/hostile.py http://127.0.0.1:8190 PID

For each class of request (deep, truncated, oversized, malformed, slow,
over-complex...) it counts the statuses, checks after the class that the
server still answers and that the store gained no version (the system
history's total), and at the end prints the server's peak RSS (VmHWM of PID).
Only the standard library is used; requests go over raw sockets so that
malformed HTTP can be sent. `bench/hostile.sh` starts a server on Synthea's
data and runs this.
"""
import collections
import json
import socket
import sys
import time
import urllib.parse

BASE = sys.argv[1].rstrip("/")
PID = int(sys.argv[2]) if len(sys.argv) > 2 else None
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port

statuses = collections.Counter()
by_class = collections.defaultdict(collections.Counter)
failures = []


def raw(data, timeout=120, read=True):
    """Sends bytes, returns the status code (0: no answer)."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return 0
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head = buf.split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
    except (ConnectionError, socket.timeout, OSError):
        return 0
    finally:
        s.close()


def request(method, path, body=b"", content_type="application/fhir+json", headers=()):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{PORT}", "Connection: close",
             "Accept: application/fhir+json"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += list(headers)
    return raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def get_json(path):
    s = socket.create_connection((HOST, PORT), timeout=60)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nConnection: close\r\nAccept: application/fhir+json\r\n\r\n".encode())
    buf = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def versions():
    return get_json("/_history?_count=1")["total"]


def run(name, requests):
    before = versions()
    started = time.time()
    for send in requests:
        status = send()
        statuses[status // 100 * 100 if status else 0] += 1
        by_class[name][status] += 1
    alive = request("GET", "/metadata") == 200
    after = versions()
    if not alive:
        failures.append(f"{name}: the server stopped answering")
    if after != before:
        failures.append(f"{name}: the store changed ({before} -> {after} versions)")
    print(f"{name:28} {sum(by_class[name].values()):5} requests {time.time() - started:7.1f} s  "
          f"{dict(sorted(by_class[name].items()))}", flush=True)


def patient(**extra):
    return json.dumps({"resourceType": "Patient", "name": [{"family": "Hostile"}], **extra})


def nested_json(depth):
    return '{"resourceType":"Patient","x":' + "[" * depth + "1" + "]" * depth + "}"


def nested_xml(depth):
    return ('<Patient xmlns="http://hl7.org/fhir">' + '<extension url="u">' * depth
            + '<valueString value="x"/>' + "</extension>" * depth + "</Patient>")


XML_DOC = ('<?xml version="1.0" encoding="UTF-8"?>\n<Patient xmlns="http://hl7.org/fhir"><active value="true"/>'
           '<name><family value="Chalmers"/><given value="Peter"/></name><birthDate value="1974-12-25"/>'
           '<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Peter <b>Chalmers</b></p></div></text>'
           '</Patient>\n')
JSON_DOC = patient(birthDate="1974-12-25", active=True)
DEPTHS = [101, 120, 200, 500, 1000, 3000, 10000, 100000, 1000000]


def post(path, body, ct="application/fhir+json", **kw):
    return lambda: request("POST", path, body, ct, **kw)


def main():
    target = get_json("/Patient?_count=1")["entry"][0]["resource"]["id"]

    run("deep JSON", [post("/Patient", nested_json(d)) for d in DEPTHS]
        + [post("/Patient", '{"resourceType":"Patient","extension":' + '[{"url":"u","extension":' * (d // 2) + "[]" + "}]" * (d // 2) + "}") for d in DEPTHS])
    run("deep XML", [post("/Patient", nested_xml(d), "application/fhir+xml") for d in DEPTHS])
    run("truncated XML", [post("/Patient", XML_DOC[:cut], "application/fhir+xml")
                          for cut in range(XML_DOC.index("<Patient") + 1, len(XML_DOC.rstrip()))])
    run("truncated JSON", [post("/Patient", JSON_DOC[:cut]) for cut in range(1, len(JSON_DOC))])
    run("trailing content", [post("/Patient", JSON_DOC + t) for t in ["{}", "x", JSON_DOC, "]", "\x00"]]
        + [post("/Patient", XML_DOC + t, "application/fhir+xml") for t in ["<Patient/>", "x", "<!-- ok --><a/>"]])
    run("duplicate members", [post("/Patient", b) for b in [
        '{"resourceType":"Observation","resourceType":"Patient"}',
        '{"resourceType":"Patient","birthDate":"1970-13-45","birthDate":"1970-01-01"}',
        '{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}',
        '{"resourceType":"Patient","id":"a","id":"b"}']])
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
              + ']><Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>')
    run("DTD and entities", [post("/Patient", b, "application/fhir+xml") for b in [
        laughs,
        '<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><name><family value="&x;"/></name></Patient>',
        '<!DOCTYPE p [<!ENTITY % x SYSTEM "http://example.org/x.dtd"> %x;]><Patient xmlns="http://hl7.org/fhir"/>',
        '<Patient xmlns="http://hl7.org/fhir"><name><family value="&undefined;"/></name></Patient>']])
    run("invalid bytes", [post("/Patient", b"{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}"),
                          post("/Patient", b"<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"\xfe\"/></Patient>", "application/fhir+xml"),
                          post("/Patient", '{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'),
                          post("/Patient", b"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\x00b\"}]}"),
                          lambda: raw(b"GET /Patient/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                          lambda: raw(b"GET /Patient/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                          lambda: raw(b"GET /metadata HTTP/1.1\r\nHost: x\r\nX-Bad: \x00\x01\r\nConnection: close\r\n\r\n")])
    run("huge numbers", [post("/Observation", json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}).replace("}}", '}, "valueQuantity": {"value": ' + v + "}}"))
                         for v in ["1e999999", "-2e308", "0." + "1" * 100, "9" * 400, "1" * 100000]]
        + [post("/Patient", '{"resourceType":"Patient","multipleBirthInteger":' + v + "}") for v in ["100000000000000000000", "2147483648", "-2147483649", "1e3"]]
        + [lambda v=v: request("GET", "/Observation?value-quantity=" + v) for v in ["1e999999", "ne1e400", "gt" + "9" * 500]])
    parens = lambda n: ('{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},'
                        '{"name":"path","valueString":"' + "(" * n + "Patient.active" + ")" * n + '"},{"name":"value","valueBoolean":true}]}]}')
    chain = lambda n: ('{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},'
                       '{"name":"path","valueString":"Patient' + ".name" * n + '"},{"name":"value","valueString":"x"}]}]}')
    run("deep FHIRPath patch", [lambda n=n: request("PATCH", f"/Patient/{target}", parens(n)) for n in [33, 100, 1000, 3000, 100000]]
        + [lambda n=n: request("PATCH", f"/Patient/{target}", chain(n)) for n in [500, 1000, 10000]])
    copies = lambda n: json.dumps([{"op": "copy", "from": "/name", "path": "/name/-"}] * n)
    run("JSON Patch growth", [lambda n=n: request("PATCH", f"/Patient/{target}", copies(n), "application/json-patch+json") for n in [10, 20, 25, 30, 40, 1000]])
    entry = {"resource": json.loads(patient()), "request": {"method": "POST", "url": "Patient"}}
    run("huge Bundles", [post("/", json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 10000})),
                         post("/", json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [entry] * 5001})),
                         post("/", '{"resourceType":"Bundle","type":"batch","entry":[' + "{}," * 5000000 + "{}]}"),
                         post("/", '{"resourceType":"Group","type":"person","actual":true,"member":[' + "{}," * 5000000 + "{}]}"),
                         post("/", "[" + "0," * 8000000 + "0]")])
    run("oversized bodies", [post("/Patient", patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + "x" * (17 << 20) + "</div>"})),
                             lambda: raw(f"POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: {1 << 40}\r\nConnection: close\r\n\r\n{{".encode())])
    searches = ([f"/Observation?subject:Patient{'.organization.partof' * (n // 2)}=x" for n in [6, 10, 20, 50]]
                + [f"/Patient?{'_has:Observation:subject:' * n}code=x" for n in [6, 20, 200]]
                + [f"/Patient?{'&'.join(['family=x'] * n)}" for n in [101, 1000]]
                + [f"/Patient?_id={','.join(f'i{i}' for i in range(n))}" for n in [1001, 5000]]
                + ["/Patient?_count=-1", "/Patient?_count=99999999999999999999", "/Patient?_count=1e9", "/Patient?_count=2147483648",
                   "/Patient?family:bogus=x", "/Patient?birthdate=xx2020", "/Patient?_sort=-bogus", "/Patient?_include=Bogus:x",
                   "/Patient?_revinclude=*:*", "/Patient?_total=sometimes", "/Patient?name:contains=" + "%25" * 1000,
                   "/?_type=" + ",".join(["Patient"] * 2000), "/Patient?_elements=" + ",".join(["name"] * 2000)])
    run("over-complex searches", [lambda q=q: request("GET", q) for q in searches])
    heavy = ["/Organization?_revinclude=Encounter:service-provider&_revinclude:iterate=Observation:encounter&_count=50",
             "/Organization?_revinclude=Encounter:*&_revinclude:iterate=Observation:*&_include:iterate=Observation:*&_count=1000",
             "/Patient?_revinclude=Observation:*&_revinclude:iterate=Provenance:*&_include:iterate=Observation:*&_count=1000",
             "/?_sort=-date,code,value-quantity,subject,status&_count=1000&_total=accurate",
             "/Observation?_sort=-date,code,-value-quantity,_lastUpdated,combo-code,-combo-value-quantity,subject,encounter,status,category&_total=accurate&_count=1000",
             "/Observation?code:text=a&value-quantity=ge0&date=ge2000&_sort=-date,code&_total=accurate&_count=1000",
             "/?_content=" + ",".join(a + b + "*" for a in "abcdefghijklmnopqrstuvwxyz" for b in "aeiou") + "&_total=accurate"]
    run("heavy searches", [lambda q=q: request("GET", q) for q in heavy])
    run("ETags and ids", [lambda t=t: request("PUT", f"/Patient/{target}", patient(id=target), headers=[f"If-Match: {t}"])
                          for t in ['W/"+1"', 'W/"01"', '"1"', "W/1", 'W/" 1"', 'W/"1', "*", 'W/"-1"', 'W/"99999999999999999999"']]
        + [lambda i=i: request("PUT", f"/Patient/{i}", patient(id=i)) for i in [".", ".."]]
        + [post("/", json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": ".."}, "request": {"method": "PUT", "url": "Patient/.."}}]}))])
    run("unresolved placeholders", [post("/", json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": ref}},
         "request": {"method": "POST", "url": "Observation"}}]})) for ref in ["urn:uuid:0b6f1d2e-5c1a-4a57-9f0e-000000000001", "urn:oid:1.2.3"]])
    run("HTTP layer", [lambda: raw(b"GET /Patient HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
                       lambda: raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
                       lambda: raw(b"GET /metadata HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * (128 * 1024 - 40)),
                       lambda: raw(b"GET /metadata HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"),
                       lambda: raw(b"GET /metadata HTTP/1.1\r\nConnection: close\r\n\r\n"),
                       lambda: raw(b"GET /metadata HTTP/1.1\r\nHost: x\r\n"),
                       lambda: raw(b"POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{"),
                       lambda: raw(b"POST /Patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")])
    idle = [socket.create_connection((HOST, PORT)) for _ in range(300)]
    t = time.time()
    run("with 300 idle connections", [lambda: request("GET", f"/Patient/{target}") for _ in range(50)])
    for s in idle:
        s.close()
    print(f"\n{sum(statuses.values())} requests: {dict(sorted(statuses.items()))} (0 = no answer)")
    if PID:
        with open(f"/proc/{PID}/status") as f:
            hwm = [l for l in f if l.startswith(("VmHWM", "VmRSS"))]
        print("server memory: " + ", ".join(l.split()[0] + " " + str(int(l.split()[1]) // 1024) + " MB" for l in hwm))
    print("failures: " + ("; ".join(failures) if failures else "none"))
    sys.exit(1 if failures else 0)


main()
