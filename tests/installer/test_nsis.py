"""The Windows installer script: it compiles with makensis (NSIS 3) against the bundle's
layout, and its text keeps the promises of issue 5 (silent options, Portuguese, no key in
the registry)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from protocol.version import __version__

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installer" / "pdvsync.nsi"


def script_text() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def code_lines() -> list[str]:
    """The script without its comments."""
    return [
        line.strip()
        for line in script_text().splitlines()
        if line.strip() and not line.strip().startswith((";", "#"))
    ]


@pytest.fixture
def makensis() -> str:
    path = shutil.which("makensis")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("makensis is required in CI (apt-get install nsis; .ci/run installs it)")
        pytest.skip(
            "makensis not installed (Debian/Ubuntu: apt-get install nsis); CI installs it and runs this"
        )
    return path


def fake_bundle(folder: Path) -> Path:
    """The layout of PyInstaller's one-folder output on Linux (no .exe suffix)."""
    (folder / "_internal").mkdir(parents=True)
    (folder / "pdvsync-agent").write_bytes(b"tray\n")
    (folder / "pdvsync-agent-cli").write_bytes(b"cli\n")
    (folder / "_internal" / "dummy.txt").write_text("library\n", encoding="utf-8")
    return folder


def compile_script(
    makensis: str, bundle: Path, out: Path, verbosity: str
) -> subprocess.CompletedProcess:
    """makensis with warnings as errors, against a bundle with the Linux layout."""
    cmd = [
        makensis,
        verbosity,
        "-WX",
        f"-DVERSION={__version__}",
        f"-DBUNDLE_DIR={bundle}",
        f"-DOUTFILE={out}",
        "-DEXE_SUFFIX=",
        str(SCRIPT),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_installer_script_compiles(tmp_path, makensis):
    bundle = fake_bundle(tmp_path / "bundle")
    # Not "setup.exe": NSIS 3.08 warns that Windows applies compatibility shims to that exact
    # name (warning 9000), and -WX makes it an error. The real build names it with the version.
    out = tmp_path / f"PDVSyncSetup-{__version__}-test.exe"
    r = compile_script(makensis, bundle, out, "-V2")
    assert r.returncode == 0, f"makensis failed:\n{r.stdout}\n{r.stderr}"
    assert out.read_bytes()[:2] == b"MZ"


def test_the_bundle_files_go_into_the_installer(tmp_path, makensis):
    bundle = fake_bundle(tmp_path / "bundle")
    out = tmp_path / "PDVSyncSetup-listing.exe"
    r = compile_script(makensis, bundle, out, "-V4")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for name in ("pdvsync-agent", "pdvsync-agent-cli", "dummy.txt", "pdvsync.ico"):
        assert re.search(rf'File: "{re.escape(name)}" \d+ bytes', r.stdout), f"{name} is not packed"


def test_no_relative_jump_crosses_a_plugin_call():
    # A plug-in call compiles to several instructions (extracting the DLL, pushing the
    # arguments), so `IfFileExists ... 0 +3` over one lands in the middle of it.
    lines = code_lines()
    for i, line in enumerate(lines):
        m = re.search(r"\s[+-](\d+)\s*$", line)
        if m and re.match(r"(If\w+|Goto|StrCmp\w*|IntCmp\w*)\b", line):
            span = lines[i + 1 : i + 1 + int(m.group(1))]
            assert not any("::" in s for s in span), f"relative jump over a plug-in call: {line}"


def test_silent_install_options_are_read():
    text = script_text()
    for option in ("/SERVER=", "/MACHINEID=", "/TENANT=", "/APIKEY=", "/NOAUTOSTART"):
        assert re.search(rf'\$\{{GetOptions\}}\s+\$\d\s+"{re.escape(option)}"', text), option
    assert "${GetParameters}" in text


def test_the_installer_speaks_brazilian_portuguese():
    assert re.search(r'!insertmacro\s+MUI_LANGUAGE\s+"PortugueseBR"', script_text())


def test_the_api_key_never_goes_to_the_registry_or_a_command_line():
    lines = code_lines()
    registry = [line for line in lines if re.match(r"WriteReg\w+", line)]
    assert registry, "the script writes its uninstall entry"
    assert not [line for line in registry if re.search(r"api.?key|\$ApiKey", line, re.I)]
    # Handed over in an environment variable, never as an argument the process list shows.
    configure = [line for line in lines if " configure " in line]
    assert configure and all(
        "$ApiKey" not in line and "--api-key-env" in line for line in configure
    )
    assert not [
        line for line in lines if re.match(r"(FileWrite|WriteINIStr)", line) and "$ApiKey" in line
    ]


def test_the_elevated_installer_starts_the_tray_only_as_the_desktop_user():
    # Started straight from the elevated installer, the tray would run as the administrator:
    # another Credential Manager and AppData than the cashier's.
    lines = code_lines()
    starts = [
        line
        for line in lines
        if re.match(r"(Exec|ExecShell|ExecWait)\b", line) and "${AGENT}" in line
    ]
    assert starts and all(line.startswith('Exec \'"$WINDIR\\explorer.exe"') for line in starts), (
        starts
    )
    assert "!define MUI_FINISHPAGE_RUN_FUNCTION StartAgentAsUser" in lines
    assert not [line for line in lines if re.match(r'!define MUI_FINISHPAGE_RUN\s+"', line)]
    # Silent: the tray that answered `quit` (or one set to start at logon) is started, as
    # the interactive finish page does, except under a deployment tool's SYSTEM account.
    text = script_text()
    success = text[text.index("Function .onInstSuccess") :]
    success = success[: success.index("FunctionEnd")]
    for needed in (
        "${Silent}",
        "$TrayWasRunning",
        "$AutoStart",
        '"SYSTEM"',
        "Call StartAgentAsUser",
    ):
        assert needed in success, needed


def test_the_uninstaller_never_claims_nothing_is_pending_when_it_could_not_tell():
    text = script_text()
    page = text[text.index("Function un.DataPage") :]
    page = page[: page.index("FunctionEnd")]
    branches = re.findall(
        r"\$\{(If|ElseIf|OrIf|Else)\}([^\n]*)\n\s*(?:;[^\n]*\n\s*)?(\$\{NSD_CreateLabel\}[^\n]*)?",
        page,
    )
    first_condition, first_label = branches[0][1].strip(), branches[0][2]
    assert first_condition == '$1 != "0"', "the exit code is checked before the count"
    assert "não foi possível verificar" in first_label


def _function(name: str) -> str:
    text = script_text()
    body = text[text.index(f"Function {name}") :]
    return body[: body.index("FunctionEnd")]


def test_the_shop_goes_from_the_options_and_the_page_into_configure():
    """/TENANT= (silent) or the page's "Loja" field reaches `configure --tenant`, quoted (a
    blank one means the default shop); an upgrade starts from the previous installation's."""
    init = _function(".onInit")
    assert re.search(r'ReadRegStr \$Tenant HKLM "\$\{UNINST_KEY\}" "Tenant"', init)
    option = init[init.index('"/TENANT="') :]
    assert re.match(r'"/TENANT=" \$(\d)\s+\$\{IfNot\} \$\{Errors\}\s+StrCpy \$Tenant \$\1', option)
    page = _function("ConnectionPage")
    label = re.search(r'NSD_CreateLabel\}[^\n]*"(Loja[^"]*)"', page)
    assert label and "opcional" in label.group(1)
    assert re.search(r'NSD_CreateText\}[^\n]*"\$Tenant"\s+Pop \$TenantField', page)
    assert "${NSD_GetText} $TenantField $Tenant" in _function("ConnectionPageLeave")
    configure = [line for line in code_lines() if " configure " in line]
    assert configure and all('--tenant "$Tenant"' in line for line in configure), configure
    assert 'WriteRegStr HKLM "${UNINST_KEY}" "Tenant" "$Tenant"' in code_lines()


def test_the_connection_page_fields_do_not_overlap():
    """Each control's vertical span (y, height in dialog units) is clear of the next one's."""
    page = _function("ConnectionPage")
    spans = [
        (int(y), int(y) + int(h))
        for y, h in re.findall(r"NSD_Create\w+\} 0 (\d+)u? 100% (\d+)u", page)
    ]
    assert len(spans) == 9, spans
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert spans[-1][1] <= 140  # the MUI page's inner height
