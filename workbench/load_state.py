"""Each server process's load state of the catalog's models, and the admin's load actions.

`LoadStateAdmin` adds to a model entry's admin:

- a "Load state" column on the list ("loaded on 2/2": on how many of the live server
  processes);
- a "Load state" section on the change page: a table of the processes (state, error,
  since when, last heartbeat; a process whose heartbeat is stale shows as gone), with
  "Load now", "Unload" and "Reload" buttons;
- the same three as list actions.

An action is applied by every server process, not only by the one that got the request:
it is a command row that each process's heartbeat picks up (at once with Redis), see
generation.lifecycle.load_state and generation.lifecycle.runtime. The state shown is what the processes
wrote at their last heartbeat. Actions need the change permission, and are POSTs
(CSRF-checked by the admin).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from generation.lifecycle.load_state import load_state_summary, model_load_states
from generation.models import ModelCommand, ModelLoadState
from generation.lifecycle.runtime import current

STATE_ORDER = (
    ModelLoadState.State.LOADED,
    ModelLoadState.State.LOADING,
    ModelLoadState.State.FAILED,
    ModelLoadState.State.UNLOADED,
)
ACTION_DONE = {
    ModelCommand.Action.LOAD: "loading",
    ModelCommand.Action.UNLOAD: "unloading",
    ModelCommand.Action.RELOAD: "reloading",
}


def load_state_text(model_id: str) -> str:
    """The list's column: "loaded on 1/2, failed on 1/2", or why there is nothing to say."""
    summary = load_state_summary(model_id=model_id, heartbeat_seconds=settings.LLM_HEARTBEAT_SECONDS)
    live = summary["live"]
    if not live:
        return "no server running"
    parts = [f"{state} on {summary[state]}/{live}" for state in STATE_ORDER if summary.get(state)]
    return ", ".join(parts) or f"not loaded (0/{live})"


def _ago(moment) -> str:
    seconds = max(0, (timezone.now() - moment).total_seconds())
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def load_state_table(model_id: str, action_urls: dict[str, str]) -> str:
    """The change page's section: each process's state of the model, and the action buttons."""
    rows = model_load_states(model_id=model_id, heartbeat_seconds=settings.LLM_HEARTBEAT_SECONDS)
    body = format_html_join(
        "",
        '<tr class="load-state" data-process="{}" data-state="{}"><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                row.process,
                "gone" if row.gone else (row.state or "not-loaded"),
                row.process,
                row.process.version,
                ("gone, was " if row.gone else "") + (row.state or "not loaded"),
                row.error,
                _ago(row.since) if row.since else "",
                ("gone: " if row.gone else "") + _ago(row.process.last_heartbeat),
            )
            for row in rows
        ),
    )
    if not rows:
        body = format_html('<tr><td colspan="6">{}</td></tr>', "No server process has reported yet.")
    # Buttons of the change form itself (its CSRF token goes with them), posted to the action's URL.
    buttons = format_html_join(
        " ",
        '<button type="submit" class="button" name="load_state_action" value="{}" formaction="{}" '
        'formmethod="post" formnovalidate>{}</button>',
        ((action, url, ModelCommand.Action(action).label.capitalize()) for action, url in action_urls.items()),
    )
    return format_html(
        '<table id="load-state"><thead><tr><th>Process</th><th>Version</th><th>State</th><th>Error</th>'
        "<th>Since</th><th>Heartbeat</th></tr></thead><tbody>{}</tbody></table>"
        '<p class="load-state-actions">{}</p>',
        body,
        buttons,
    )


def issue(request, entries, action: str) -> None:
    """Issue `action` on `entries` for every process, and tell the admin user what happened."""
    issued, refused = [], []
    for entry in entries:
        if action != ModelCommand.Action.UNLOAD and not entry.enabled:
            refused.append(entry.model_id)
            continue
        current().issue_command(model_id=entry.model_id, action=action, issued_by=request.user.get_username())
        issued.append(entry.model_id)
    if issued:
        messages.success(
            request, f"{ACTION_DONE[action].capitalize()} {', '.join(issued)} on every server process."
        )
    if refused:
        messages.warning(request, f"Not {ACTION_DONE[action]} {', '.join(refused)}: disabled in the catalog.")


def _action(action: str):
    def run(modeladmin, request, queryset):
        if not modeladmin.has_change_permission(request):
            raise PermissionDenied
        issue(request, queryset, action)

    run.__name__ = f"{action}_models"
    run.short_description = f"{ModelCommand.Action(action).label.capitalize()} the selected models (every process)"
    run.allowed_permissions = ("change",)
    return run


class LoadStateAdmin:
    """Mixin for the model entries' ModelAdmin: load state column, section, buttons and actions."""

    load_state_actions = tuple(_action(action) for action in ModelCommand.Action.values)

    @staticmethod
    def _load_state_url_name(opts) -> str:
        return f"{opts.app_label}_{opts.model_name}_load_state"

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/load-state/<str:action>/",
                self.admin_site.admin_view(self.load_state_view),
                name=self._load_state_url_name(self.opts),
            )
        ]
        return urls + super().get_urls()

    def get_list_display(self, request):
        return (*super().get_list_display(request), "load_state")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "load_state_section")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return (*fieldsets, ("Load state", {"fields": ("load_state_section",)}))

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.actions is None or IS_POPUP_VAR in request.GET or not self.has_change_permission(request):
            return actions
        for function in self.load_state_actions:
            actions[function.__name__] = (function, function.__name__, function.short_description)
        return actions

    @staticmethod
    def load_state(obj) -> str:
        return load_state_text(obj.model_id)

    load_state.short_description = "Load state"

    def load_state_section(self, obj) -> str:
        if obj is None or obj.pk is None:
            return ""
        url_name = f"admin:{self._load_state_url_name(self.opts)}"
        urls = {action: reverse(url_name, args=[quote(obj.pk), action]) for action in ModelCommand.Action.values}
        return load_state_table(obj.model_id, urls)

    load_state_section.short_description = "On each server process"

    def load_state_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None or action not in ModelCommand.Action.values or not self.has_change_permission(request, obj):
            raise PermissionDenied
        issue(request, [obj], action)
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[quote(obj.pk)])
        return HttpResponseRedirect(change_url)
