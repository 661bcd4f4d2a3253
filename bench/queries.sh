# Shared by synthea.sh and scale.sh (sourced): the bundles issue's queries
# on a server holding Synthea data, and the time of one request.

# Sets X (the patient with the most Observations among the first 200),
# FAMILY (X's family name), Y (the LOINC code X has most often since 2015)
# and QUERIES, for the server at base URL $1.
pick_queries() {
    local B=$1
    X=$(curl -s "$B/Patient?_count=200&_elements=id" | python3 -c '
import json, sys, urllib.request
ids = [e["resource"]["id"] for e in json.load(sys.stdin).get("entry", [])]
def count(i):
    with urllib.request.urlopen(f"'"$B"'/Observation?patient={i}&_summary=count") as r:
        return json.load(r)["total"]
print(max(ids, key=count))')
    FAMILY=$(curl -s "$B/Patient/$X" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"][0]["family"])')
    echo "   patient X = $X ($(curl -s "$B/Observation?patient=$X&_summary=count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])') Observations), family $FAMILY"
    # X's heart rates may all be older than 2015: a query that matches
    # nothing would measure nothing.
    Y=$(curl -s "$B/Observation?patient=$X&date=ge2015&_elements=code&_count=1000" | python3 -c '
import collections, json, sys
codes = collections.Counter(
    c["code"] for e in json.load(sys.stdin).get("entry", [])
    for c in e["resource"]["code"].get("coding", [])[:1] if c.get("system") == "http://loinc.org")
print(codes.most_common(1)[0][0] if codes else "8867-4")')
    echo "   code Y = $Y"
    QUERIES=(
        "Observation?code=http://loinc.org|8867-4&_summary=count"
        "Observation?category=laboratory&_sort=-date"
        "Observation?patient=$X&code=http://loinc.org|$Y&date=ge2015"
        "Patient?family=$FAMILY"
        "Observation?subject:Patient.family=$FAMILY"
        "Patient?_has:Observation:patient:code=8867-4"
        "Encounter?patient=$X&_include=Encounter:practitioner"
        "Patient/$X/\$everything"
    )
}

# The seconds one GET of $2 (a query with its parameters) takes at base $1.
time_query() {
    local B=$1 q=$2
    if [[ "$q" == *\?* ]]; then
        curl -s -o /dev/null -w '%{time_total}\n' -G "$B/${q%%\?*}" $(echo "${q#*\?}" | tr '&' '\n' | sed 's/^/--data-urlencode /')
    else
        curl -s -o /dev/null -w '%{time_total}\n' "$B/$q"
    fi
}

# Bundle.total of $2 at base $1, or "-" where the server gives none.
query_total() {
    local B=$1 q=$2
    curl -s -G "$B/${q%%\?*}" $( [[ "$q" == *\?* ]] && echo "${q#*\?}" | tr '&' '\n' | sed 's/^/--data-urlencode /') \
        | python3 -c 'import json,sys; print(json.load(sys.stdin).get("total", "-"))'
}

# The p-th percentile (0-100) of the numbers on standard input, in ms.
percentile() {
    sort -n | awk -v p="$1" '{ v[NR] = $1 } END { printf "%.2f", v[int(NR * p / 100) + 1] * 1000 }'
}
