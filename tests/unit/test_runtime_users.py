"""`-u user[:group]` resolution with runc's rules, and reading the files inside a root."""
from __future__ import annotations

import pytest

from lamina.runtime.errors import ContainerError
from lamina.runtime.users import ExecUser, lookup_user, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

twin:x:2000:2000::/first:/bin/sh
twin:x:2001:2001::/second:/bin/sh
"""
GROUP = """\
root:x:0:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
nogroup:x:65534:
staff:x:50:
"""


@pytest.mark.parametrize("spec, expected", [
    (None, ExecUser(0, 0, (10,), "/root")),
    ("", ExecUser(0, 0, (10,), "/root")),
    ("root", ExecUser(0, 0, (10,), "/root")),
    ("app", ExecUser(1000, 1000, (10, 29), "/home/app")),
    ("1000", ExecUser(1000, 1000, (10, 29), "/home/app")),
    ("nobody", ExecUser(65534, 65534, (), "/nonexistent")),
    ("twin", ExecUser(2000, 2000, (), "/first")),            # first match wins
])
def test_names_and_ids_found_in_passwd(spec, expected):
    assert lookup_user(spec, PASSWD, GROUP) == expected


def test_numeric_user_without_entry_gets_gid_0_and_home_slash():
    assert lookup_user("4242", PASSWD, GROUP) == ExecUser(4242, 0, (), "/")


@pytest.mark.parametrize("spec, expected", [
    ("app:staff", ExecUser(1000, 50, (), "/home/app")),     # an explicit group: no extras
    ("app:50", ExecUser(1000, 50, (), "/home/app")),
    ("app:7777", ExecUser(1000, 7777, (), "/home/app")),    # numeric gid without entry
    ("4242:4242", ExecUser(4242, 4242, (), "/")),
    ("nobody:nogroup", ExecUser(65534, 65534, (), "/nonexistent")),
])
def test_user_and_group(spec, expected):
    assert lookup_user(spec, PASSWD, GROUP) == expected


def test_unknown_user_is_dockers_message():
    with pytest.raises(ContainerError) as err:
        lookup_user("foo", PASSWD, GROUP)
    assert str(err.value) == "unable to find user foo: no matching entries in passwd file"
    assert err.value.exit_code == 125


def test_unknown_group_is_dockers_message():
    with pytest.raises(ContainerError, match="^unable to find group bar: "
                                             "no matching entries in group file$"):
        lookup_user("app:bar", PASSWD, GROUP)


def test_without_passwd_file_names_fail_and_numbers_work():
    with pytest.raises(ContainerError, match="unable to find user app"):
        lookup_user("app", None, None)
    assert lookup_user("33:44", None, None) == ExecUser(33, 44, (), "/")
    assert lookup_user(None, None, None) == ExecUser(0, 0, (), "/")


@pytest.mark.parametrize("spec", ["-1", "2147483648", "0:-5"])
def test_ids_out_of_range(spec):
    with pytest.raises(ContainerError, match="range"):
        lookup_user(spec, PASSWD, GROUP)


def test_files_are_read_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "group").write_text(GROUP)
    # An absolute symlink is resolved inside the root, never to the host's file.
    (root / "etc" / "passwd").symlink_to("/real/passwd")
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text(PASSWD)
    assert resolve_user(root, "app") == ExecUser(1000, 1000, (10, 29), "/home/app")
    assert resolve_user(root, "1000:audio").gid == 29


def test_a_symlink_cannot_lead_to_a_file_outside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside-passwd").write_text("app:x:7:7::/evil:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("../../outside-passwd")
    with pytest.raises(ContainerError, match="unable to find user app"):
        resolve_user(root, "app")
