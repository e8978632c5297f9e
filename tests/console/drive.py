"""The console in a real Chromium (Debian's, driven by Playwright), against
the real server and real sshd: what an operator does, step by step, with a
screenshot of each page and an accessibility check (axe-core) of each view.

Run by tests/console.rs, which starts the servers and passes their
addresses in the environment. Exits non-zero on the first failed check.
"""

import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"]
TOKEN = os.environ["CONSOLE_TOKEN"]
SSH_TARGETS = [t.rsplit(":", 1) for t in os.environ["SSH_TARGETS"].split(",")]
SSH_USER = os.environ["SSH_USER"]
SSH_PASSWORD = os.environ["SSH_PASSWORD"]
DOOMED = os.environ["DOOMED"]  # ip:port of an sshd this script kills
DOOMED_PID = int(os.environ["DOOMED_PID"])
PLUGIN_DIR = Path(os.environ["PLUGIN_DIR"])
OB_WASM = Path(os.environ["OB_WASM"])
SHOTS = Path(os.environ["SCREENSHOTS"])
AXE = os.environ["AXE"]

SHOTS.mkdir(parents=True, exist_ok=True)
problems = []
AXE_SOURCE = Path(AXE).read_text()


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def accessible(page, view):
    """axe-core in the page: no serious or critical violation. It goes in
    through the DevTools protocol, which the page's CSP (rightly) does not
    let a script tag do."""
    page.evaluate(AXE_SOURCE + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document)")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    for v in bad:
        problems.append(f"{view}: {v['id']} ({v['impact']}): {v['help']}: "
                        + "; ".join(n["target"][0] for n in v["nodes"][:3]))
    print(f"axe {view}: {len(result['violations'])} violations, {len(bad)} serious", flush=True)


def wait_idle(page):
    page.wait_for_load_state("networkidle")


def labelled(scope, label):
    """The control labelled exactly `label`, with or without the required mark."""
    return scope.get_by_label(re.compile(rf"^{label}( \*)?$"))


def create(page, name, ip, port, description=""):
    page.click("#new-credential")
    dialog = page.locator("dialog")
    expect(dialog).to_be_visible()
    labelled(dialog, "Name").fill(name)
    labelled(dialog, "Description").fill(description)
    dialog.locator('input[name="ip"]').first.fill(ip)
    dialog.locator('input[name="port"]').first.fill(port)
    labelled(dialog, "username").fill(SSH_USER)
    dialog.locator('input[name="passphrase"]').fill(SSH_PASSWORD)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden(timeout=30000)


def names_on_page(page):
    return page.locator("#credentials tbody th.name").all_inner_texts()


def walk(page, context):
    response = page.goto(f"{URL}/console/")
    csp = response.headers.get("content-security-policy", "")
    if "script-src 'self'" not in csp or "unsafe" in csp:
        problems.append(f"weak CSP: {csp!r}")

    # Sign in with the token.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    accessible(page, "sign-in")
    shot(page, "01-sign-in")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()
    expect(page.locator("#who-name")).to_contain_text("(admin)")

    # 25 credentials through the form, on 25 loopback addresses, and one
    # on a host that will go away.
    for i, (ip, port) in enumerate(SSH_TARGETS[:25], start=1):
        create(page, f"c{i:02d}", ip, port, description=f"host {i}")
    doomed_ip, doomed_port = DOOMED.rsplit(":", 1)
    create(page, "zz-doomed", doomed_ip, doomed_port)
    wait_idle(page)
    expect(page.locator("#page-of")).to_contain_text("Page 1 of 3")
    accessible(page, "credentials")
    shot(page, "02-credentials")

    # Page 3 of 10 per page holds the 21st to 25th (and the 26th).
    page.click("#next-page")
    page.click("#next-page")
    expect(page.locator("#page-of")).to_contain_text("Page 3 of 3")
    on_page = names_on_page(page)
    for n in range(21, 26):
        if f"c{n:02d}" not in on_page:
            problems.append(f"page 3 lacks c{n:02d}: {on_page}")
    shot(page, "03-page-3")

    # Sorted by name, both ways.
    page.select_option("#page-size", "50")
    expect(page.locator("#page-of")).to_contain_text("Page 1 of 1")
    page.click('button.sort[data-sort="name"]')
    expect(page.locator('th[aria-sort="ascending"]')).to_have_count(1)
    expect(page.locator("#credentials tbody th.name").first).to_have_text("c01")
    page.click('button.sort[data-sort="name"]')
    expect(page.locator('th[aria-sort="descending"]')).to_have_count(1)
    expect(page.locator("#credentials tbody th.name").first).to_have_text("zz-doomed")
    shot(page, "04-sorted-desc")

    # Search.
    page.get_by_label("Search").fill("c07")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#credentials tbody tr")).to_have_count(1)
    expect(page.locator("#credentials tbody th.name")).to_have_text("c07")
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#credentials tbody tr")).to_have_count(26)

    # Edit one, keeping the stored passphrase (left empty).
    page.get_by_role("button", name="Edit c03").click()
    dialog = page.locator("dialog")
    expect(dialog.locator('input[name="passphrase"]')).to_have_value("")
    labelled(dialog, "Description").fill("edited, passphrase kept")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden(timeout=30000)
    expect(page.locator("#credentials tbody tr", has_text="c03")).to_contain_text("edited, passphrase kept")

    # Re-pinning after a host's key changed: with a new passphrase, the box
    # says to learn the keys afresh; without one, the server refuses it.
    page.get_by_role("button", name="Edit c03").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("The targets' host keys changed").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".outcome")).to_contain_text("forget_host_keys needs the passphrase")
    dialog.locator('input[name="passphrase"]').fill(SSH_PASSWORD)
    labelled(dialog, "Description").fill("host keys learned again")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden(timeout=30000)
    expect(page.locator("#credentials tbody tr", has_text="c03")).to_contain_text("host keys learned again")

    # A form error stays at its field: a bad address is refused before
    # anything is stored.
    page.click("#new-credential")
    dialog = page.locator("dialog")
    labelled(dialog, "Name").fill("bad-ip")
    dialog.locator('input[name="ip"]').first.fill("not-an-ip")
    labelled(dialog, "username").fill(SSH_USER)
    dialog.locator('input[name="passphrase"]').fill("x")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.locator(".outcome")).to_contain_text("not a valid IP address")
    expect(dialog.locator('input[name="ip"][aria-invalid="true"]')).to_have_count(1)
    shot(page, "05-form-error")
    dialog.get_by_role("button", name="Cancel").click()

    # The doomed host goes away; validate all; the failure and its
    # reason survive a reload.
    os.kill(DOOMED_PID, signal.SIGKILL)
    page.click("#validate-all")
    expect(page.locator("#status")).to_contain_text("26 validated: 25 passed, 1 failed", timeout=120000)
    page.reload()
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()
    page.select_option("#page-size", "50")
    row = page.locator("#credentials tbody tr", has_text="zz-doomed")
    expect(row).to_contain_text("1 of 1 failed")
    expect(row).to_contain_text("REFUSED")
    expect(page.locator("#credentials tbody tr", has_text="c01")).to_contain_text("all 1 passed")
    shot(page, "06-validated-after-reload")

    # Rotate the key and watch the re-encryption finish.
    page.click('a[data-view="encryption"]')
    expect(page.get_by_role("heading", name="Encryption")).to_be_visible()
    accessible(page, "encryption")
    page.click("#rotate")
    # The progress bar follows it (26 rows may be done before the first
    # look); the state says when it is over, and the bar ends full.
    expect(page.locator("#rewrap-progress")).to_be_visible()
    expect(page.locator("#rewrap-state")).to_contain_text(
        "every row is under the current key", timeout=60000)
    expect(page.locator("#rewrap-progress")).to_have_attribute("max", "26")
    expect(page.locator("#rewrap-progress")).to_have_attribute("value", "26")
    expect(page.locator("#keys tbody tr", has_text="in use")).to_have_count(0)
    expect(page.locator("#current-key")).to_have_text("2")
    shot(page, "07-rotated")

    # Load the OB plugin; its form appears.
    shutil.copy(OB_WASM, PLUGIN_DIR / OB_WASM.name)
    page.click('a[data-view="plugins"]')
    expect(page.get_by_role("heading", name="Plugins")).to_be_visible()
    page.click("#reload")
    # A debug build compiles the component for some seconds.
    expect(page.locator("#plugins")).to_contain_text("ob-verifier", timeout=60000)
    accessible(page, "plugins")
    shot(page, "08-plugins")
    page.click('a[data-view="credentials"]')
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()
    page.click("#new-credential")
    dialog = page.locator("dialog")
    dialog.get_by_label("Target type").select_option("OB")
    expect(dialog.get_by_label("SQL port").first).to_have_attribute("placeholder", "2881")
    expect(dialog).to_contain_text("OceanBase")
    accessible(page, "ob-form")
    shot(page, "09-ob-form")
    dialog.get_by_role("button", name="Cancel").click()

    # The audit log, filtered.
    page.click('a[data-view="audit"]')
    expect(page.get_by_role("heading", name="Audit")).to_be_visible()
    page.get_by_label("Route").fill("/api/v1/security/credential")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit tbody tr").first).to_contain_text("/api/v1/security/credential")
    accessible(page, "audit")
    shot(page, "10-audit")

    # A phone-width window, and 200 % zoom (half the width in CSS
    # pixels): nothing runs off the side of the page.
    for name, width in (("11-phone", 390), ("12-zoom-200", 640)):
        page.set_viewport_size({"width": width, "height": 900})
        page.click('a[data-view="credentials"]')
        expect(page.get_by_role("heading", name="Credentials")).to_be_visible()
        wait_idle(page)
        # The layout settles after the resize re-renders the list: what
        # counts is an overflow that stays.
        for _ in range(15):
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow <= 1:
                break
            page.wait_for_timeout(200)
        if overflow > 1:
            # What reaches past the window: the outermost such element of
            # each branch, and any positioned one (it escapes a scrolling
            # parent that is not its containing block).
            culprits = page.evaluate("""() => [...document.querySelectorAll('body *')]
                .filter((e) => {
                    const right = (el) => el.getBoundingClientRect().right;
                    const positioned = ['absolute', 'fixed'].includes(getComputedStyle(e).position);
                    return right(e) > window.innerWidth + 1
                        && (positioned || right(e.parentElement) <= window.innerWidth + 1);
                })
                .slice(0, 5)
                .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`
                    + ` ${Math.round(e.getBoundingClientRect().width)}px`
                    + ` position ${getComputedStyle(e).position}`)""")
            problems.append(f"{name}: the page is {overflow}px wider than the window: {culprits}")
        shot(page, name)

    # Nothing secret in the URL or in local storage; signing out forgets.
    if TOKEN in page.url:
        problems.append("the token is in the URL")
    if page.evaluate("localStorage.length") != 0:
        problems.append("something is in local storage")
    page.click("#sign-out")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if page.evaluate("sessionStorage.length") != 0:
        problems.append("the token outlived the sign-out")

    # The keyboard alone: the token field has the focus; type, Enter.
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if page.evaluate("document.activeElement.id") != "token":
        problems.append("the sign-in form does not put the focus on the token")
        page.focus("#token")
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()

    # A token the tab kept that the server refuses now (revoked, expired):
    # the sign-in form says why, and the token is forgotten.
    page.evaluate("""Object.keys(sessionStorage).forEach(k =>
        sessionStorage.setItem(k, 'credhost_revoked_0000000000000000'))""")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#sign-in-error")).not_to_be_empty()
    if page.evaluate("sessionStorage.length") != 0:
        problems.append("a refused token was kept")



def insecure_origin(browser):
    """The console at http://console.test (a name the browser resolves to
    loopback, so the page is not a secure context, as one from another
    machine over plain HTTP is not): signing in never sends the token."""
    context = browser.new_context()
    page = context.new_page()
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")))
    port = URL.rsplit(":", 1)[1]
    page.goto(f"http://console.test:{port}/console/")
    if page.evaluate("window.isSecureContext"):
        problems.append("http://console.test counts as a secure context: the check proves nothing")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_contain_text("plain HTTP")
    if any(sent):
        problems.append("the console sent a token from a page that is not a secure context")
    if page.evaluate("sessionStorage.length") != 0:
        problems.append("a token the console would not send was kept")
    context.close()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP console.test 127.0.0.1"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        console_errors = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))

        try:
            walk(page, context)
            insecure_origin(browser)
        except Exception:
            # What the browser showed when a step failed, for whoever reads the log.
            page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
            print("--- page at failure ---\n" + page.locator("body").aria_snapshot(), flush=True)
            print(f"browser console errors: {console_errors}", flush=True)
            raise
        csp_errors = [e for e in console_errors if "Content Security Policy" in e]
        if csp_errors:
            problems.append(f"CSP violations: {csp_errors}")
        browser.close()

    if problems:
        print("PROBLEMS:\n" + "\n".join(problems), flush=True)
        sys.exit(1)
    print("console: every step passed", flush=True)


if __name__ == "__main__":
    main()
