#!/usr/bin/env python3
"""Writes a synthetic population by PUT: Patients p0…p(N-1) and Observations
o0…o(M-1) (five LOINC codes, laboratory and vital-signs categories, dates
over 15 years, UCUM quantities), each Observation referring to a Patient.

    bench/generate.py HOST PORT PATIENTS OBSERVATIONS
"""
import json, sys, random, http.client
from concurrent.futures import ThreadPoolExecutor
host, port, npat, nobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(1)
codes = [("8867-4","Heart rate","/min"),("29463-7","Body weight","kg"),("8302-2","Body height","cm"),("2339-0","Glucose","mg/dL"),("718-7","Hemoglobin","g/dL")]
fam = ["Smith","Jones","Müller","Garcia","Chalmers","Nguyen","Brown","Taylor"]
def put(conn, path, body):
    conn.request("PUT", path, json.dumps(body), {"Content-Type":"application/fhir+json","Prefer":"return=minimal"})
    r = conn.getresponse(); r.read()
    assert r.status in (200,201), (path, r.status)
def load(chunk):
    conn = http.client.HTTPConnection(host, port)
    for kind, i in chunk:
        if kind == "p":
            put(conn, f"/Patient/p{i}", {"resourceType":"Patient","id":f"p{i}","name":[{"family":fam[i%len(fam)],"given":[f"G{i}"]}],"birthDate":f"{1940+i%60}-0{1+i%9}-1{i%9}","gender":["male","female"][i%2]})
        else:
            c = codes[i % len(codes)]
            put(conn, f"/Observation/o{i}", {"resourceType":"Observation","id":f"o{i}","status":"final",
              "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory" if i%3 else "vital-signs"}]}],
              "code":{"coding":[{"system":"http://loinc.org","code":c[0],"display":c[1]}]},
              "subject":{"reference":f"Patient/p{i%npat}"},"effectiveDateTime":f"{2010+i%15}-0{1+i%9}-1{i%9}T10:00:00Z",
              "valueQuantity":{"value":round(random.uniform(1,200),1),"unit":c[2],"system":"http://unitsofmeasure.org","code":c[2]}})
    conn.close()
items = [("p",i) for i in range(npat)] + [("o",i) for i in range(nobs)]
chunks = [items[k::8] for k in range(8)]
with ThreadPoolExecutor(8) as pool: list(pool.map(load, chunks))
print("loaded", npat, nobs)
