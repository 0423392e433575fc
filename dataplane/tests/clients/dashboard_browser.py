#!/usr/bin/env python3
"""Check the admin dashboard in a real headless Chromium (Selenium 4).

    python3 dashboard_browser.py ADMIN_URL TOKEN SCREENSHOT_PATH

ADMIN_URL is the admin listener's base, e.g. http://127.0.0.1:8091 (no trailing path).
The script first reads ADMIN_URL/admin/v1/overview itself (urllib, Bearer TOKEN) to
know the expected figures, then opens ADMIN_URL/admin/dashboard#token=TOKEN in
headless Chromium, waits (max 20 s) for #total-requests to show a number and checks:
the requests and cost tiles equal today's figures (cost as $x.xxxx), every team/user
has a tr[data-group] row in #by-team/#by-user (and every model in #top-models, every
budget subject in #budgets), every provider has a row in #providers with its circuit
state, #errors has one row per last_errors entry, the token is gone from the URL,
and the browser console has no SEVERE entry. It saves a screenshot to
SCREENSHOT_PATH and prints one JSON line:
  {"ok", "problems": [...], "requests_shown", "cost_shown", "console": [...]}
exiting 0 if ok, else 1. Any exception prints {"ok": false, "problems": [...]} and
exits 1. Binaries: /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
chromium, chromium-driver), overridable with env CHROME_BIN / CHROMEDRIVER.
"""

import json
import os
import re
import sys
import traceback
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 20


def fetch_overview(admin_url, token):
    req = urllib.request.Request(
        admin_url + "/admin/v1/overview",
        headers={"Authorization": "Bearer " + token, "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read().decode("utf-8"))


def usd(value):
    # Same rounding as JS Number.prototype.toFixed(4): exact binary value, ties away from zero.
    return "$" + str(Decimal(float(value or 0)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def row_groups(driver, table_id):
    """data-group of every data row of a table, as the browser holds it."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr[data-group]'))"
        ".map(function (tr) { return tr.getAttribute('data-group'); });",
        table_id,
    )


def shown_text(driver, element_id):
    try:
        return driver.find_element(By.ID, element_id).text.strip()
    except Exception:  # noqa: BLE001 - absent element reads as empty
        return ""


def check(driver, overview, token, problems):
    today = overview.get("today") or {}

    requests_shown = shown_text(driver, "total-requests")
    want_requests = str(int(today.get("requests") or 0))
    if requests_shown.replace(",", "") != want_requests:
        problems.append(f"total-requests shows {requests_shown!r}, API says {want_requests}")
    cost_shown = shown_text(driver, "total-cost")
    if cost_shown != usd(today.get("cost_usd")):
        problems.append(f"total-cost shows {cost_shown!r}, expected {usd(today.get('cost_usd'))!r}")
    want_tokens = str(int((today.get("tokens_in") or 0) + (today.get("tokens_out") or 0)))
    tokens_shown = shown_text(driver, "total-tokens")
    if tokens_shown.replace(",", "") != want_tokens:
        problems.append(f"total-tokens shows {tokens_shown!r}, expected {want_tokens}")

    for table_id, key, field in (
        ("by-team", "by_team", "group"),
        ("by-user", "by_user", "group"),
        ("top-models", "top_models", "group"),
        ("budgets", "budgets", "subject"),
    ):
        present = set(row_groups(driver, table_id))
        for row in overview.get(key) or []:
            name = "" if row.get(field) is None else str(row.get(field))
            if name not in present:
                problems.append(f"#{table_id}: no tr[data-group={name!r}]")

    rows = driver.find_elements(By.CSS_SELECTOR, "#providers tbody tr[data-group]")
    by_name = {r.get_attribute("data-group"): r for r in rows}
    for p in overview.get("providers") or []:
        name = str(p.get("name"))
        row = by_name.get(name)
        if row is None:
            problems.append(f"#providers: no row for provider {name!r}")
            continue
        cells = row.find_elements(By.CSS_SELECTOR, "td.circuit")
        circuit = cells[0].text.strip() if cells else None
        if circuit != p.get("circuit"):
            problems.append(f"#providers: {name!r} circuit shows {circuit!r}, API says {p.get('circuit')!r}")
    if len(rows) != len(overview.get("providers") or []):
        problems.append(f"#providers has {len(rows)} rows, API lists {len(overview.get('providers') or [])}")

    n_errors = len(row_groups(driver, "errors"))
    want_errors = len(overview.get("last_errors") or [])
    if n_errors != want_errors:
        problems.append(f"#errors has {n_errors} rows, API lists {want_errors}")

    url = driver.current_url
    if token and (token in url or urllib.parse.quote(token, safe="") in url):
        problems.append("the token is still in the address bar: " + url)

    return requests_shown, cost_shown


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        print(json.dumps({"ok": False, "problems": ["usage: dashboard_browser.py ADMIN_URL TOKEN SCREENSHOT_PATH"]}))
        return 1
    admin_url, token, screenshot = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    driver = None
    try:
        overview = fetch_overview(admin_url, token)

        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(30)

        driver.get(admin_url + "/admin/dashboard#token=" + urllib.parse.quote(token, safe=""))
        problems = []
        requests_shown = cost_shown = None
        try:
            WebDriverWait(driver, WAIT_SECONDS).until(
                lambda d: re.fullmatch(r"[0-9][0-9,]*", shown_text(d, "total-requests"))
            )
        except TimeoutException:
            problems.append(
                f"#total-requests showed no number within {WAIT_SECONDS} s "
                f"(shows {shown_text(driver, 'total-requests')!r}, banner {shown_text(driver, 'banner')!r})"
            )
        else:
            requests_shown, cost_shown = check(driver, overview, token, problems)

        console = driver.get_log("browser")
        for entry in console:
            if entry.get("level") == "SEVERE":
                problems.append("console SEVERE: " + str(entry.get("message")))

        # Grow the window to the page's height so the screenshot holds every table.
        try:
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            driver.set_window_size(1280, max(1000, min(height + 40, 6000)))
        except Exception:  # noqa: BLE001 - a viewport-sized screenshot will do
            pass
        if not driver.save_screenshot(screenshot):
            problems.append("could not save the screenshot to " + screenshot)

        if requests_shown is not None and re.fullmatch(r"[0-9,]+", requests_shown):
            requests_shown = int(requests_shown.replace(",", ""))
        ok = not problems
        print(json.dumps({
            "ok": ok,
            "problems": problems,
            "requests_shown": requests_shown,
            "cost_shown": cost_shown,
            "console": console,
        }))
        return 0 if ok else 1
    except Exception as e:  # noqa: BLE001 - every failure becomes one JSON line
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"ok": False, "problems": [f"{type(e).__name__}: {e}"]}))
        return 1
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    sys.exit(main())
