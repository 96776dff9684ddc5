"""Django settings for the inference service (DJANGO_SETTINGS_MODULE=inference_service.settings),
in parts by concern.

Every setting that an operator may change is read in these parts, once, from the environment
(and from a `.env` file in the project root when one exists, which `core` reads first).
`.env.example` documents each of them. The rest of the code reads `django.conf.settings`,
never `os.environ`.
"""

from inference_service.settings.core import *  # noqa: F403
from inference_service.settings.security import *  # noqa: F403
from inference_service.settings.service import *  # noqa: F403
from inference_service.settings.observability import *  # noqa: F403
