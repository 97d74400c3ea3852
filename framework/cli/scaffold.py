"""``framework new <name>``: a project that runs and passes its own tests at once.

The project depends on this framework as ``framework[config] @ file://<this checkout>``
(resolved when the project is generated), or on ``framework[config]>=<version>`` when the
framework was installed from a package rather than a checkout; ``config`` brings
pydantic-settings for the project's ``Settings``.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import framework
from framework.cli.errors import CliError, UsageError
from framework.cli.names import Names

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{{kebab}}"
version = "0.1.0"
description = "A service built with the framework."
requires-python = ">=3.11"
dependencies = [
    # Written by `framework new`; see README.md, "The framework dependency".
    "{{requirement}}",
]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.24", "httpx>=0.27"]

[tool.setuptools.packages.find]
include = ["{{snake}}*"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
testpaths = ["tests"]
pythonpath = ["."]
addopts = "--strict-markers"
"""

MAKEFILE = """\
# The two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install clean

$(VENV)/.installed: pyproject.toml
\t$(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install -q -e '.[test]'
\ttouch $@

install: $(VENV)/.installed

## Serve the app on http://$(HOST):$(PORT), restarting when a .py file changes.
run: install
\t$(VENV)/bin/framework run {{snake}}.main:app --host $(HOST) --port $(PORT) --reload

## Run the tests.
test: install
\t$(PY) -m pytest -q

clean:
\trm -rf $(VENV) *.egg-info
"""

README = """\
# {{kebab}}

A service built with the framework: a module, a controller with an HTTP route and an
event handler, a service, and tests.

```sh
make run    # serve on http://127.0.0.1:8000, restarting when a file changes
make test   # run the tests
```

Both create `.venv` and install the project on first use (Python 3.11 or newer).
Then try `curl http://127.0.0.1:8000/greetings/Ada` and `curl http://127.0.0.1:8000/greetings`.

## Layout

- `{{snake}}/main.py`: `app = create_app(AppModule)`; serve it with
  `framework run {{snake}}.main:app` or `python -m {{snake}}`.
- `{{snake}}/app_module.py`: the root module.
- `{{snake}}/settings.py`: the settings, read from the environment or `.env` when the
  app starts: `{{env_prefix}}GREETING`, `{{env_prefix}}HOST`, `{{env_prefix}}PORT`. A bad
  value stops the start with an error naming the variable.
- `{{snake}}/greetings_controller.py`: `GET /greetings/{name}` greets and emits a
  `greetings.sent` event; the `@event_pattern("greetings.sent")` handler records it.
- `{{snake}}/greetings_service.py`: the provider both use.
- `tests/`: tests through `framework.testing.create_testing_module`.

## Next steps

```sh
.venv/bin/framework routes {{snake}}.main:app          # what the app serves
.venv/bin/framework generate controller orders         # + orders_controller.py, registered
.venv/bin/framework generate service orders
```

## The framework dependency

`pyproject.toml` depends on `{{requirement}}`, the framework `framework new` ran from,
resolved when this project was generated. Point it elsewhere (another checkout, a
package index) by editing that line; `make` reinstalls when `pyproject.toml` changes.
"""

GITIGNORE = """\
.venv/
__pycache__/
*.egg-info/
.env
"""

INIT = '''"""The {{kebab}} service."""
'''

MAIN = '''"""The app: ``framework run {{snake}}.main:app`` or ``python -m {{snake}}``."""

from __future__ import annotations

from framework import create_app

from {{snake}}.app_module import AppModule

app = create_app(AppModule)
'''

DUNDER_MAIN = '''"""``python -m {{snake}}``: serve the app on the host and port of ``Settings``."""

import sys

from framework import ConfigurationError
from framework.config import load_settings

from {{snake}}.main import app
from {{snake}}.settings import Settings

try:
    settings = load_settings(Settings)
except ConfigurationError as exc:  # a bad variable: say which, without a traceback
    sys.exit(f"error: {exc}")
app.run(host=settings.host, port=settings.port)
'''

SETTINGS = '''"""The settings, from the environment (or ``.env``): ``{{env_prefix}}GREETING=Hi``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="{{env_prefix}}", env_file=".env")

    greeting: str = "Hello"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
'''

APP_MODULE = '''"""The root module: what the app is made of."""

from __future__ import annotations

from framework import module
from framework.config import ConfigModule

from {{snake}}.greetings_controller import GreetingsController
from {{snake}}.greetings_service import GreetingsService
from {{snake}}.settings import Settings


@module(
    imports=[ConfigModule.for_root(Settings)],
    controllers=[GreetingsController],
    providers=[GreetingsService],
)
class AppModule:
    pass
'''

SERVICE = '''"""Greetings, and who was greeted."""

from __future__ import annotations

from collections import deque

from framework import injectable

from {{snake}}.settings import Settings


@injectable()
class GreetingsService:
    """Greets people and remembers the latest ones (bounded, like every buffer)."""

    def __init__(self, settings: Settings) -> None:
        self.greeting = settings.greeting
        self.history: deque[str] = deque(maxlen=100)

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}!"

    def record(self, name: str) -> None:
        self.history.appendleft(name)
'''

CONTROLLER = '''"""HTTP routes under /greetings and the ``greetings.sent`` event handler."""

from __future__ import annotations

from framework import ClientProxy, controller, event_pattern, get
from pydantic import BaseModel

from {{snake}}.greetings_service import GreetingsService


class Greeting(BaseModel):
    message: str


class Greeted(BaseModel):
    """The ``greetings.sent`` event."""

    name: str


@controller("/greetings")
class GreetingsController:
    def __init__(self, service: GreetingsService, events: ClientProxy) -> None:
        self.service = service
        self.events = events

    @get()
    async def history(self) -> list[str]:
        return list(self.service.history)

    @get("/{name}")
    async def greet(self, name: str) -> Greeting:
        # Handled by on_greeted below, in-process (or by any service over Kafka).
        await self.events.emit("greetings.sent", Greeted(name=name))
        return Greeting(message=self.service.greet(name))

    @event_pattern("greetings.sent")
    async def on_greeted(self, event: Greeted) -> None:
        self.service.record(event.name)
'''

TEST = '''"""The app through its real HTTP stack and message pipeline, in-process."""

from __future__ import annotations

from framework.testing import create_testing_module

from {{snake}}.app_module import AppModule
from {{snake}}.greetings_service import GreetingsService
from {{snake}}.settings import Settings


async def test_greets_over_http() -> None:
    async with create_testing_module(AppModule).compile() as t:
        response = await t.http.get("/greetings/Ada")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, Ada!"}


async def test_greeting_events_are_recorded() -> None:
    t = create_testing_module(AppModule).compile()
    async with t:
        await t.http.get("/greetings/Ada")
        await t.client.emit("greetings.sent", {"name": "Grace"})
    # Leaving the block stops the app, which first handles every queued event.
    assert list(t.get(GreetingsService).history) == ["Grace", "Ada"]


async def test_with_a_replaced_service() -> None:
    class PoliteGreetings(GreetingsService):
        def greet(self, name: str) -> str:
            return f"Good day, {name}."

    builder = create_testing_module(AppModule).override_provider(
        GreetingsService, use_value=PoliteGreetings(Settings())
    )
    async with builder.compile() as t:
        response = await t.http.get("/greetings/Ada")
    assert response.json() == {"message": "Good day, Ada."}


async def test_the_greeting_is_configured_by_settings() -> None:
    builder = create_testing_module(AppModule).override_provider(
        Settings, use_value=Settings(greeting="Hi")
    )
    async with builder.compile() as t:
        response = await t.http.get("/greetings/Ada")
    assert response.json() == {"message": "Hi, Ada!"}
'''

FILES: dict[str, str] = {
    "pyproject.toml": PYPROJECT,
    "Makefile": MAKEFILE,
    "README.md": README,
    ".gitignore": GITIGNORE,
    "{{snake}}/__init__.py": INIT,
    "{{snake}}/__main__.py": DUNDER_MAIN,
    "{{snake}}/main.py": MAIN,
    "{{snake}}/app_module.py": APP_MODULE,
    "{{snake}}/settings.py": SETTINGS,
    "{{snake}}/greetings_service.py": SERVICE,
    "{{snake}}/greetings_controller.py": CONTROLLER,
    "tests/__init__.py": "",
    "tests/test_greetings.py": TEST,
}


def framework_requirement() -> str:
    """``framework[config] @ file://<checkout>`` for a checkout, else
    ``framework[config]>=<version>``."""
    root = Path(framework.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return f"framework[config] @ {root.as_uri()}"
    return f"framework[config]>={metadata.version('framework')}"


def new_project(path: str, *, requirement: str | None = None) -> Path:
    """Write a new project into the folder ``path`` (created; must not exist or be empty).

    Args:
        path: the project folder; its last part names the project and its package.
        requirement: the framework requirement for pyproject.toml; ``None`` for
            ``framework_requirement()``.

    Returns:
        The project folder.
    """
    folder = Path(path).resolve()
    names = Names.parse(folder.name)
    if names.snake in {"framework", "tests"} or names.snake in sys.stdlib_module_names:
        raise UsageError(f"{folder.name!r} would shadow the {names.snake!r} module; pick another")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CliError(f"{path} already exists and is not empty; choose another name")
    extra = {
        "requirement": requirement or framework_requirement(),
        "env_prefix": names.snake.upper() + "_",
    }
    for relative, template in FILES.items():
        out = folder / names.render(relative)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(names.render(template, **extra))
    return folder


def command(args: Any) -> int:
    """``framework new`` from parsed arguments."""
    new_project(args.name, requirement=args.framework_requirement)
    shown = args.name.rstrip("/")
    print(f"created {shown}/ ({len(FILES)} files)\n\n  cd {shown}\n  make test\n  make run")
    return 0
