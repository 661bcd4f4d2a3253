#!/usr/bin/env python3
"""Derive Hearth's compact FHIR R4 element table from the official profiles.

Reads the StructureDefinition bundles of FHIR R4 (4.0.1) and writes
`r4-elements.json` next to this script; `hearth-model/src/structure.rs`
embeds that file with `include_str!`.

Usage: derive_elements.py [FHIR_R4_DIR]   (default /work/shared/fhir/r4)

Output (minified JSON):

    {"fhirVersion": "4.0.1",
     "types": {"<TypeName>": {"kind": "r" | "c" | "p",   # resource / complex / primitive
                              "abstract": 1,              # only when abstract
                              "elements": {"<path below the type>": ELEMENT}}}}

    ELEMENT = [types, min, many, flags]  or  [types, min, many, flags, ref]
      types: "|"-joined FHIR type codes ("string", "Quantity|string|..." for
             choice elements, whose path ends in "[x]"); "" for contentReference
      min:   minimum cardinality
      many:  1 when max is "*", else 0
      flags: bit 1 = isSummary, bit 2 = isModifier
      ref:   contentReference target path without "#" (e.g. "Questionnaire.item");
             the element reuses that element's type and children.

Paths are relative to the type ("name", "contact.name"), so the absolute
definition path is "<TypeName>.<path>". Only specialisations (base resources
and data types) are kept: constraint profiles (SimpleQuantity, ...) and logical
models (MetadataResource) are not wire types.
"""

import json
import os
import sys

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
KIND = {"resource": "r", "complex-type": "c", "primitive-type": "p"}


def type_codes(sd, el):
    """FHIR type codes of an element, mapping FHIRPath system types to FHIR names."""
    codes = []
    for t in el.get("type", []):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            if sd["kind"] == "primitive-type" and el["path"] == sd["type"] + ".value":
                # The value of primitive `code` is a System.String, but what a
                # validator needs is the FHIR primitive it belongs to.
                code = sd["type"]
            else:
                # Element.id, Extension.url, Resource.id carry their FHIR type
                # in an extension on the type.
                ext = [x["valueUrl"] for x in t.get("extension", []) if x["url"] == FHIR_TYPE_EXT]
                code = ext[0] if ext else code.rsplit(".", 1)[1].lower()
        codes.append(code)
    if sd["kind"] == "resource" and el["path"] == sd["type"] + ".id":
        # R4 4.0.1 annotates Resource.id as `string` (fixed in R4B), but the
        # resource pages and the JSON format define it as type `id`.
        codes = ["id"]
    return codes


def derive(fhir_dir):
    types = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        with open(os.path.join(fhir_dir, name), encoding="utf-8") as f:
            bundle = json.load(f)
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd["resourceType"] != "StructureDefinition" or sd.get("kind") not in KIND:
                continue
            if sd.get("derivation") == "constraint":
                continue
            root = sd["type"]
            elements = {}
            for el in sd["snapshot"]["element"][1:]:
                path = el["path"]
                assert path.startswith(root + "."), path
                flags = (1 if el.get("isSummary") else 0) | (2 if el.get("isModifier") else 0)
                row = ["|".join(type_codes(sd, el)), int(el["min"]), 1 if el["max"] == "*" else 0, flags]
                if "contentReference" in el:
                    row.append(el["contentReference"].lstrip("#"))
                elements[path[len(root) + 1 :]] = row
            info = {"kind": KIND[sd["kind"]]}
            if sd.get("abstract"):
                info["abstract"] = 1
            info["elements"] = elements
            types[root] = info
    return {"fhirVersion": "4.0.1", "types": types}


def main():
    fhir_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fhir/r4"
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "r4-elements.json")
    table = derive(fhir_dir)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(table, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    n = sum(len(t["elements"]) for t in table["types"].values())
    print(f"wrote {out}: {len(table['types'])} types, {n} elements, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
