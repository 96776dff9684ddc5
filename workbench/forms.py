"""The model entry's admin form: widgets an admin can use without writing JSON, and the
checks of the entry's files (workbench.model_checks) when it is saved."""

import codecs

from django import forms
from django.core.exceptions import ValidationError

from catalog.models import ModelEntry
from workbench.model_checks import FileReport, check_files


class TemplateField(forms.CharField):
    """A template as typed: browsers send a textarea's lines with CRLF endings, which would
    change the template (and record a change in its history) at every save."""

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n")


class LinesField(forms.CharField):
    """A list of strings, one per line; `\\n`, `\\t` and `\\\\` write a newline, a tab and a
    backslash inside one."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(item.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t") for item in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        lines = super().to_python(value).replace("\r\n", "\n").split("\n")
        try:
            return [codecs.decode(line, "unicode_escape") for line in lines if line.strip()]
        except UnicodeDecodeError as exc:
            raise ValidationError(f"A line has a backslash that escapes nothing ({exc.reason}); write \\\\.") from None

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


FILE_FIELDS = {"source", "location", "filename", "tokenizer_json"}
CHAT_FIELDS = {"capabilities", "chat_template"}


class ModelEntryForm(forms.ModelForm):
    capabilities = forms.MultipleChoiceField(
        choices=ModelEntry.Capability.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=ModelEntry._meta.get_field("capabilities").help_text,
    )
    chat_template = TemplateField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "vLargeTextField", "spellcheck": "false"}),
        help_text=ModelEntry._meta.get_field("chat_template").help_text,
    )
    aliases = LinesField(required=False, help_text=ModelEntry._meta.get_field("aliases").help_text)
    chat_stop_sequences = LinesField(
        required=False,
        label="Chat stop sequences",
        help_text=ModelEntry._meta.get_field("chat_stop_sequences").help_text,
    )

    class Meta:
        model = ModelEntry
        fields = "__all__"

    def _post_clean(self):
        super()._post_clean()  # the instance takes the form's values, and the model's own checks run
        # The files are checked once everything else is valid, and only when the fields that
        # name them changed: an entry's other settings stay editable while its file is away.
        # A change of its chat settings reads the file again for its template.
        names_files = self.instance._state.adding or bool(FILE_FIELDS & set(self.changed_data))
        if self.errors or not (names_files or CHAT_FIELDS & set(self.changed_data)):
            return
        try:
            report = check_files(self.instance)
        except ValidationError as exc:
            if names_files:
                self.add_error(None, exc)
            return
        if self._chats_without_a_template(report):
            self.add_error("chat_template", (
                "The model's file has no chat template: write one here (with its BOS and EOS tokens), "
                "or take away the chat capability; chat requests would be refused."
            ))

    def _chats_without_a_template(self, report: FileReport) -> bool:
        entry = self.instance
        return (ModelEntry.Capability.CHAT in entry.capabilities and not entry.chat_template
                and report.path is not None and not report.metadata.get("chat_template"))
