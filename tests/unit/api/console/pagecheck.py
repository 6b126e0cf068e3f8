"""What the console's page tests check in the HTML: every form field labelled, a field's error
next to it (aria-invalid, described by a `.field-error`), and the forms a page offers."""
from __future__ import annotations

from html.parser import HTMLParser


class _Fields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, str]] = {}  # id -> attributes
        self.unnamed: list[dict[str, str]] = []
        self.labels: set[str] = set()
        self.errors: dict[str, str] = {}  # id of a .field-error -> its text
        self.forms: list[str] = []  # the action of each POST form
        self._error: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in {"input", "select", "textarea"} and found.get("type") != "hidden":
            if "id" in found:
                self.fields[found["id"]] = found
            else:
                self.unnamed.append(found)
        elif tag == "label" and "for" in found:
            self.labels.add(found["for"])
        elif tag == "form" and found.get("method", "").lower() == "post":
            self.forms.append(found.get("action", ""))
        elif "field-error" in found.get("class", "").split() and "id" in found:
            self._error = found["id"]
            self.errors[self._error] = ""

    def handle_endtag(self, tag: str) -> None:
        self._error = None

    def handle_data(self, data: str) -> None:
        if self._error:
            self.errors[self._error] += data


def parse(html: str) -> _Fields:
    fields = _Fields()
    fields.feed(html)
    return fields


def assert_labelled(html: str) -> None:
    found = parse(html)
    assert not found.unnamed, f"fields without an id (so without a label): {found.unnamed}"
    missing = sorted(set(found.fields) - found.labels)
    assert not missing, f"fields without a <label for>: {missing}"


def field_error(html: str, field_id: str) -> str:
    """The error shown for the field with this id; the field must be aria-invalid and described by it."""
    found = parse(html)
    field = found.fields[field_id]
    assert field.get("aria-invalid") == "true", f"{field_id} is not aria-invalid: {field}"
    described = field.get("aria-describedby", "").split()
    shown = [found.errors[i] for i in described if i in found.errors]
    assert shown, f"{field_id} is described by no .field-error: {field}"
    return " ".join(shown).strip()


def invalid_fields(html: str) -> set[str]:
    return {i for i, attrs in parse(html).fields.items() if attrs.get("aria-invalid") == "true"}


def post_forms(html: str) -> list[str]:
    return parse(html).forms
