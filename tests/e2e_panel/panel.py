"""The manager's panel as the browser tests see it: log in, find a PDV's card by its machine
id, read alerts, press a card's button, and check the page never navigated (live updates).

Cards are found by what a manager sees: the element holding the machine id as its whole text,
widened to the nearest ancestor that also shows a badge label; a `data-machine-id` attribute
is used when the page carries one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

LABELS = ["Aguardando", "Sincronizando", "Sincronizado", "Com Divergência", "Offline/Erro"]

# Finds the card of one machine; the alerts are skipped (they name PDVs too).
_FIND_CARD = """
([mid, labels]) => {
  const inAlerts = (e) => !!e.closest('[data-alerts], #alertas, .alertas, .alerts, [role=alert]');
  for (const e of document.querySelectorAll('[data-machine-id]')) {
    if (e.dataset.machineId === mid && !inAlerts(e)) return e;
  }
  const leaves = [...document.querySelectorAll('body *')].filter((e) =>
    !inAlerts(e) && e.textContent.trim() === mid &&
    ![...e.children].some((c) => c.textContent.trim() === mid));
  for (const leaf of leaves) {
    for (let e = leaf; e && e !== document.body; e = e.parentElement) {
      const text = e.innerText || '';
      if (labels.some((l) => text.includes(l))) return e;
    }
  }
  return null;
}
"""

_ALERTS = """
() => [...document.querySelectorAll('[data-alerts], #alertas, .alertas, .alerts')]
  .map((e) => e.innerText).join('\\n')
"""

_BUTTON_IN = """
([card, pattern]) => {
  const re = new RegExp(pattern, 'i');
  return [...card.querySelectorAll('button, input[type=submit], a')].find(
    (b) => re.test((b.innerText || b.value || b.title || b.getAttribute('aria-label') || '').trim())
  ) || null;
}
"""


class PanelPage:
    """A Playwright page on one server's panel (`base_url`)."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.navigations: list[str] = []
        self.dialogs: list[str] = []
        page.on("dialog", self._on_dialog)
        self.accept_dialogs = True

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if self.accept_dialogs and dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    # -- login ------------------------------------------------------------------------------

    def login_form(self, username: str, password: str) -> None:
        """Type into the login form and send it (the page must be the login page)."""
        page = self.page
        page.locator("input[type=password]").first.wait_for(timeout=10_000)
        fields = page.locator(
            "form input:not([type=hidden]):not([type=password]):not([type=submit])"
            ":not([type=checkbox])"
        )
        fields.first.fill(username)
        page.locator("input[type=password]").first.fill(password)
        with page.expect_navigation(timeout=15_000):
            page.locator("input[type=password]").first.press("Enter")

    def login(self, username: str, password: str) -> None:
        """Open /painel, get sent to the login page, log in, land on the panel."""
        self.page.goto("/painel")
        assert "/painel/entrar" in self.page.url, f"not sent to the login page: {self.page.url}"
        self.login_form(username, password)
        assert re.search(r"/painel/?(\?.*)?$", self.page.url), f"after login: {self.page.url}"

    # -- reading the page ----------------------------------------------------------------------

    def card_text(self, machine_id: str) -> str | None:
        return self.page.evaluate(
            f"(args) => {{ const c = ({_FIND_CARD})(args); return c ? c.innerText : null; }}",
            [machine_id, LABELS],
        )

    def field(self, machine_id: str, name: str) -> str | None:
        """One fact of the card (`data-f="<name>"`: stateLabel, pending, reconcile, ...)."""
        return self.page.evaluate(
            f"(args) => {{ const c = ({_FIND_CARD})([args[0], args[1]]);"
            ' const f = c && c.querySelector(`[data-f="${args[2]}"]`);'
            " return f ? f.textContent.trim() : null; }",
            [machine_id, LABELS, name],
        )

    def wait_field(
        self,
        machine_id: str,
        name: str,
        check: Callable[[str], bool],
        timeout: float,
        what: str,
    ) -> str:
        """Poll one fact of the card until `check(text)`; its text, or AssertionError with
        the whole card."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.field(machine_id, name)
            if text is not None and check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"card {machine_id!r}: {what} not seen within {timeout:.0f} s; "
                    f"{name} = {text!r}; card now: {self.card_text(machine_id)!r}"
                )
            self.page.wait_for_timeout(250)

    def wait_state(self, machine_id: str, label: str, timeout: float) -> str:
        return self.wait_field(machine_id, "stateLabel", lambda t: t == label, timeout, label)

    def wait_card(
        self,
        machine_id: str,
        check: Callable[[str], bool],
        timeout: float,
        what: str,
    ) -> str:
        """Poll the card's text until `check(text)`; its text, or AssertionError with it."""
        deadline = time.monotonic() + timeout
        text: str | None = None
        while True:
            text = self.card_text(machine_id)
            if text is not None and check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"card {machine_id!r}: {what} not seen within {timeout:.0f} s; "
                    f"card now: {text!r}"
                )
            self.page.wait_for_timeout(250)

    def alerts_text(self) -> str:
        return self.page.evaluate(_ALERTS)

    def wait_alert(self, check: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.alerts_text()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"alert {what} not shown within {timeout:.0f} s: {text!r}")
            self.page.wait_for_timeout(250)

    def click_in_card(self, machine_id: str, button: str, timeout: float = 10) -> None:
        """Press the card's button whose text matches `button` (a regex); retried when the
        live page re-renders the card meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            handle = self.page.evaluate_handle(
                f"(args) => {{ const c = ({_FIND_CARD})([args[0], args[1]]);"
                f" return c ? ({_BUTTON_IN})([c, args[2]]) : null; }}",
                [machine_id, LABELS, button],
            )
            element = handle.as_element()
            if element is not None:
                try:
                    element.click(timeout=2_000)
                    return
                except Exception:  # noqa: BLE001 - detached by a re-render: look again
                    if time.monotonic() > deadline:
                        raise
            elif time.monotonic() > deadline:
                raise AssertionError(f"no button {button!r} on the card of {machine_id!r}")
            self.page.wait_for_timeout(200)

    def confirm_if_asked(self, wait_ms: int = 1500) -> bool:
        """An action may first open a dialog (`<dialog open>`: strategy, "tem certeza?");
        press its confirming button. A JavaScript confirm() is accepted by `_on_dialog`."""
        dialog = self.page.locator("dialog[open]")
        try:
            dialog.first.wait_for(state="visible", timeout=wait_ms)
        except Exception:  # noqa: BLE001 - no dialog: the action went straight through
            return False
        dialog.first.locator("button, input[type=submit]").filter(
            has_text=re.compile(r"confirm|reconcili|forçar|esquecer|sim|ok|emitir|revogar", re.I)
        ).first.click()
        return True

    # -- no reloads ------------------------------------------------------------------------------

    def arm_no_reload(self) -> None:
        """From now on, count main-frame navigations and mark the document: a reload or a
        navigation would lose the mark."""
        self.page.on(
            "framenavigated",
            lambda frame: frame == self.page.main_frame and self.navigations.append(frame.url),
        )
        self.page.evaluate("() => { window.__e2eSameDocument = 'yes'; }")

    def assert_not_reloaded(self) -> None:
        assert self.navigations == [], f"the page navigated: {self.navigations}"
        same = self.page.evaluate("() => window.__e2eSameDocument")
        assert same == "yes", "the page was reloaded (its document is new)"

    def horizontal_overflow(self) -> int:
        """How many pixels the page is wider than the window (0: no horizontal scroll)."""
        return self.page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth,"
            " document.body ? document.body.scrollWidth : 0) - window.innerWidth"
        )
