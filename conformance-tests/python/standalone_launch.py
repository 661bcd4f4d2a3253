"""A SMART standalone launch by the Python `fhirclient` package against
Hearth (conformance-tests/tests/smart_launch.rs runs it): fhirclient
discovers the endpoints, builds the authorization URL (with PKCE and aud),
the sign-in and consent forms are posted as a browser posts them, and
fhirclient handles the callback, exchanges the code and reads the
patient's record.

    python3 standalone_launch.py BASE USERNAME PASSWORD

Prints what it found as JSON.
"""

import html
import json
import re
import sys

import requests
from fhirclient import client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

REDIRECT = "http://localhost:9/callback"


def hidden(page, name):
    found = re.search(r'name="%s" value="([^"]*)"' % name, page)
    if not found:
        raise SystemExit("no %s in %s" % (name, page))
    return html.unescape(found.group(1))


def main():
    base, username, password = sys.argv[1:4]
    smart = client.FHIRClient(
        settings={
            "app_id": "growth",
            "api_base": base,
            "redirect_uri": REDIRECT,
            "scope": "launch/patient patient/Patient.rs patient/Observation.rs offline_access",
        }
    )
    authorize_url = smart.authorize_url
    browser = requests.Session()
    page = browser.get(authorize_url, allow_redirects=False)
    page.raise_for_status()
    consent = browser.post(
        base + "/auth/sign-in",
        data={
            "ticket": hidden(page.text, "ticket"),
            "csrf": hidden(page.text, "csrf"),
            "username": username,
            "password": password,
        },
        allow_redirects=False,
    )
    consent.raise_for_status()
    ticks = re.findall(r'name="scope" value="(\d+)"', consent.text)
    done = browser.post(
        base + "/auth/consent",
        data=[("ticket", hidden(consent.text, "ticket")), ("csrf", hidden(consent.text, "csrf")),
              ("decision", "approve")] + [("scope", i) for i in ticks],
        allow_redirects=False,
    )
    if done.status_code != 303:
        raise SystemExit("consent answered %s: %s" % (done.status_code, done.text))
    smart.handle_callback(done.headers["Location"])
    patient = Patient.read(smart.patient_id, smart.server)
    observations = Observation.where(struct={"patient": smart.patient_id}).perform_resources(smart.server)
    print(json.dumps({
        "authorize_url": authorize_url,
        "ready": smart.ready,
        "patient_id": smart.patient_id,
        "family": patient.name[0].family,
        "observations": len(observations),
        "refresh_token": bool(smart.server.auth.refresh_token),
    }))


main()
