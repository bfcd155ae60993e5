from tests.support.browser import chromium_launcher  # noqa: F401 (fixture)
from tests.support.sign_in import provider  # noqa: F401 (fixture)
