"""The login, logout and password pages in a real browser: redirects, errors, lockout, CSRF, expiry."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

import pytest
from sqlalchemy import update

from server.models import Operator
from tests.conftest import PASSWORD, make_operator

pytestmark = pytest.mark.browser


def path_of(page) -> str:
    return urlparse(page.url).path


def submit_login(page, username: str, password: str):
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation() as nav:
        page.click("button[type=submit]")
    return nav.value


def test_correct_password_lands_on_the_floor(page, live_server, host):
    make_operator(host, "mia", "manager")
    page.goto(live_server("/login"))
    response = submit_login(page, "mia", PASSWORD)
    assert response.status == 200
    assert path_of(page) == "/floor"
    assert page.locator("header .who").inner_text() == "mia (manager)"
    assert page.locator("#floor-grid").count() == 1


def test_wrong_password_shows_the_error_and_stays_on_login_with_401(page, live_server, host):
    make_operator(host, "mia", "manager")
    page.goto(live_server("/login"))
    response = submit_login(page, "mia", "not the password")
    assert response.status == 401
    assert path_of(page) == "/login"
    assert page.locator("p.error[role=alert]").inner_text() == "wrong username or password"
    assert page.locator("header").count() == 0  # not logged in: no operator header


def test_sixth_wrong_attempt_locks_the_account_with_429(page, live_server, host):
    make_operator(host, "mia", "manager")
    page.goto(live_server("/login"))
    for i in range(5):
        assert submit_login(page, "mia", f"wrong {i}").status == 401, i
    response = submit_login(page, "mia", "wrong 6")
    assert response.status == 429
    assert path_of(page) == "/login"
    assert "locked" in page.locator("p.error").inner_text()
    # While locked, even the right password is refused.
    response = submit_login(page, "mia", PASSWORD)
    assert response.status == 429
    assert path_of(page) == "/login"


def test_login_post_without_csrf_token_is_refused(page, live_server, host):
    make_operator(host, "mia", "manager")
    page.goto(live_server("/login"))  # a session cookie, so only the token is missing
    r = page.request.post(live_server("/login"), form={"username": "mia", "password": PASSWORD},
                          max_redirects=0)
    assert r.status == 400
    page.goto(live_server("/floor"))
    assert path_of(page) == "/login"  # the refused post logged nobody in


def test_logout_post_without_csrf_token_is_refused(login, page, live_server):
    login("manager")
    status = page.evaluate("""async () => {
        const r = await fetch("/logout", {method: "POST", credentials: "same-origin", redirect: "manual",
                                          headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: ""});
        return r.status;
    }""")
    assert status == 400
    page.goto(live_server("/floor"))
    assert path_of(page) == "/floor"  # still logged in


def test_logout_returns_to_login_and_the_floor_then_needs_a_login(login, page, live_server):
    login("manager")
    assert path_of(page) == "/floor"
    with page.expect_navigation():
        page.click("header button:has-text('Log out')")
    assert path_of(page) == "/login"
    page.goto(live_server("/floor"))
    assert path_of(page) == "/login"
    assert "next=/floor" in page.url


def test_expired_password_must_be_changed_before_the_floor(page, live_server, host):
    make_operator(host, "old", "attendant")
    with host.db.begin() as s:
        s.execute(update(Operator).where(Operator.username == "old")
                  .values(password_expires_at=host.now() - dt.timedelta(days=1)))
    page.goto(live_server("/login"))
    submit_login(page, "old", PASSWORD)
    assert path_of(page) == "/password"
    assert "expired" in page.locator("form.card p.error").first.inner_text()
    # The floor stays out of reach until the password is changed.
    page.goto(live_server("/floor"))
    assert path_of(page) == "/password"

    new = "a much newer password"
    page.fill("#current", PASSWORD)
    page.fill("#password", new)
    page.fill("#confirm", new + "x")
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert path_of(page) == "/password"
    assert page.locator("p.error[role=alert]").inner_text() == "The two passwords differ."

    page.fill("#current", PASSWORD)
    page.fill("#password", new)
    page.fill("#confirm", new)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    page.wait_for_url("**/floor")
    assert page.locator("p.flash").inner_text() == "Password changed."

    # The new password is the one that works now.
    page.context.clear_cookies()
    page.goto(live_server("/login"))
    assert submit_login(page, "old", PASSWORD).status == 401
    submit_login(page, "old", new)
    assert path_of(page) == "/floor"
