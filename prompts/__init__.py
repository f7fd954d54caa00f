"""What to ask a judge: Jinja templates (one `.j2` file each, metadata in front matter),
loaded and validated before any request, rendered in a sandbox into chat messages."""

from .templates import (
    BUILTIN_DIR,
    DEFAULT_TEMPLATE,
    Mode,
    Template,
    TemplateError,
    display_labels,
    list_templates,
    load_template,
)

__all__ = [
    "BUILTIN_DIR",
    "DEFAULT_TEMPLATE",
    "Mode",
    "Template",
    "TemplateError",
    "display_labels",
    "list_templates",
    "load_template",
]
