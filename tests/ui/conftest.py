from tests.support.browser import browser_page, chromium, chromium_launcher  # noqa: F401 (fixtures)
from tests.support.sign_in import provider  # noqa: F401 (fixture)
