"""The ``@module(...)`` edit behind ``framework generate``: minimal, formatting kept."""

from __future__ import annotations

import textwrap

import pytest

from framework.cli.errors import CliError
from framework.cli.register import register

HEAD = "from framework import module\n\nfrom pkg.a import A\n\n\n"


def _add(source: str, field: str = "providers", line_length: int = 88) -> str:
    out, owner = register(
        textwrap.dedent(source),
        field=field,
        name="NewService",
        import_from="pkg.new_service",
        line_length=line_length,
    )
    assert owner == "AppModule"
    return out


def _module(decorator: str) -> str:
    return HEAD + textwrap.dedent(decorator).strip() + "\nclass AppModule:\n    pass\n"


def _decorator(out: str) -> str:
    return out.split("\n\n\n", 1)[1].split("class AppModule")[0].strip()


def test_import_goes_in_sorted_place_in_the_package_block() -> None:
    out = _add(_module("@module(providers=[A])"))
    assert out.startswith(
        "from framework import module\n\nfrom pkg.a import A\nfrom pkg.new_service import "
        "NewService\n\n\n"
    )
    before = _add(HEAD.replace("pkg.a", "pkg.z") + "@module()\nclass AppModule:\n    pass\n")
    assert "from pkg.new_service import NewService\nfrom pkg.z import A\n" in before


@pytest.mark.parametrize(
    ("decorator", "expected"),
    [
        ("@module()", "@module(providers=[NewService])"),
        ("@module(providers=[])", "@module(providers=[NewService])"),
        ("@module(imports=[A], providers=[B])", "@module(imports=[A], providers=[B, NewService])"),
        ("@module(imports=[A])", "@module(imports=[A], providers=[NewService])"),
        ("@module(providers=())", "@module(providers=(NewService,))"),
        ("@module(providers=(B,))", "@module(providers=(B, NewService))"),
    ],
)
def test_one_line_calls_stay_on_one_line(decorator: str, expected: str) -> None:
    assert _decorator(_add(_module(decorator))) == expected


def test_a_call_too_long_for_one_line_is_wrapped_like_ruff_format() -> None:
    out = _add(
        _module(
            "@module(imports=[FirstLongModuleName, SecondLongModuleName, Third], providers=[B])"
        )
    )
    assert _decorator(out) == textwrap.dedent(
        """\
        @module(
            imports=[FirstLongModuleName, SecondLongModuleName, Third],
            providers=[B, NewService],
        )"""
    )


def test_a_list_too_long_for_its_line_gets_one_item_per_line() -> None:
    source = _module(
        """
        @module(
            imports=[],
            providers=[FirstLongProviderName, SecondLongProviderName, ThirdProvider],
        )
        """
    )
    assert _decorator(_add(source)) == textwrap.dedent(
        """\
        @module(
            imports=[],
            providers=[
                FirstLongProviderName,
                SecondLongProviderName,
                ThirdProvider,
                NewService,
            ],
        )"""
    )


def test_multi_line_list_keeps_trailing_commas_and_comments() -> None:
    source = _module(
        """
        @module(
            providers=[
                B,  # the B
            ],
        )
        """
    )
    assert _decorator(_add(source)) == textwrap.dedent(
        """\
        @module(
            providers=[
                B,  # the B
                NewService,
            ],
        )"""
    )


def test_multi_line_call_gets_a_new_keyword_line() -> None:
    source = _module(
        """
        @module(
            controllers=[C],
        )
        """
    )
    assert (
        _decorator(_add(source)) == "@module(\n    controllers=[C],\n    providers=[NewService],\n)"
    )


def test_aliased_and_attribute_decorators_are_found() -> None:
    aliased = "from framework import module as mod\n\n\n@mod()\nclass AppModule:\n    pass\n"
    assert "@mod(providers=[NewService])" in _add(aliased)
    dotted = '"""Doc."""\nimport framework\n\n\n@framework.module()\nclass AppModule:\n    pass\n'
    out = _add(dotted)
    assert out.startswith(
        '"""Doc."""\nimport framework\n\nfrom pkg.new_service import NewService\n'
    )
    assert "@framework.module(providers=[NewService])" in out


def test_unicode_before_the_list_keeps_offsets_right() -> None:
    out = _add(_module("@module(imports=[A], providers=[B])  # café ☕"))
    assert "@module(imports=[A], providers=[B, NewService])  # café ☕" in out


def test_refuses_what_it_cannot_edit() -> None:
    with pytest.raises(CliError, match="not a list literal"):
        _add(_module("@module(providers=PROVIDERS)"))
    with pytest.raises(CliError, match="found: none"):
        _add("class AppModule:\n    pass\n")
    two = _module("@module()") + "\n\n@module()\nclass Other:\n    pass\n"
    with pytest.raises(CliError, match="found: AppModule, Other"):
        _add(two)
    out, owner = register(two, field="providers", name="X", import_from="pkg.x", owner="Other")
    assert owner == "Other" and "@module(providers=[X])\nclass Other" in out
