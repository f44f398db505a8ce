"""JupyterHub config for the jupyterhub-resume demo and tests: one machine, local processes.

Run it as ``.venv/bin/jupyterhub -f hub-config/jupyterhub_config.py``. It reads only these
environment variables (defaults in brackets):

RESUME_HUB_DATA_DIR            where the hub keeps its state: sqlite db, cookie secret, proxy pid
                               file, the agent kernelspec (``share/jupyter``) and the user homes
                               ``<data>/home/<user>`` [<repo>/.data/hub]
RESUME_HUB_IP                  address the proxy, hub and servers listen on [127.0.0.1]
RESUME_HUB_PUBLIC_PORT         the proxy's public port: browsers go here [8000]
RESUME_HUB_API_PORT            the hub's own port (JUPYTERHUB_API_URL = http://<ip>:<port>/hub/api) [8081]
RESUME_HUB_PROXY_API_PORT      the proxy's REST API port, used only by the hub [8001]
RESUME_SERVICE_NAME            the service name; its pages are at /services/<name>/ [resume]
RESUME_SERVICE_URL             where the hub and the servers reach the service [http://127.0.0.1:10101]
RESUME_SERVICE_API_TOKEN       the service's hub API token (required; the service gets the same
                               value as JUPYTERHUB_API_TOKEN)
RESUME_HUB_USERS               comma-separated users allowed to log in [alice,bob]
RESUME_HUB_ADMIN_USERS         comma-separated admin users (also allowed) [admin]
RESUME_HUB_PASSWORD            the one password of every user (DummyAuthenticator) [resume]
RESUME_HUB_LAST_ACTIVITY_INTERVAL  seconds between the hub's reads of the proxy's activity [10]
RESUME_HUB_SERVER_ACTIVITY_INTERVAL seconds between a server's activity reports to the hub [10]
RESUME_HUB_PAGE_DEFAULT_LIMIT  default page size of paginated hub API lists [JupyterHub's, 50]
RESUME_HUB_ALLOW_NAMED_SERVERS 1 to allow named servers [0]
RESUME_AGENT_PATH              directory holding the jupyterhub_resume_agent package [<repo>/src/agent/python]
RESUME_HUB_INSTANCE            optional label copied into every server's (and so every kernel's)
                               environment, so a supervisor can find all processes of this hub
RESUME_TEST_ADMIN_TOKEN        optional: registers a service `test-admin` with this token and admin
                               scopes, for tests only; unset in the demo and in production
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The hub imports this file with exec(); the sibling modules are not on sys.path by themselves.
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from resume_hooks import install_resume_hooks  # noqa: E402
from resume_service import configure_resume_service  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when the hub loads this file)


def env(name, default=None):
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_int(name, default):
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def env_list(name, default):
    return [u.strip() for u in env(name, default).split(",") if u.strip()]


data_dir = os.path.abspath(env("RESUME_HUB_DATA_DIR", os.path.join(REPO, ".data", "hub")))
os.makedirs(data_dir, exist_ok=True)
ip = env("RESUME_HUB_IP", "127.0.0.1")

# --- Hub, proxy and where their state lives ---
c.JupyterHub.bind_url = f"http://{ip}:{env_int('RESUME_HUB_PUBLIC_PORT', 8000)}"
c.JupyterHub.hub_ip = ip
c.JupyterHub.hub_port = env_int("RESUME_HUB_API_PORT", 8081)
c.JupyterHub.db_url = "sqlite:///" + os.path.join(data_dir, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(data_dir, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(data_dir, "jupyterhub.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env_int('RESUME_HUB_PROXY_API_PORT', 8001)}"
c.ConfigurableHTTPProxy.pid_file = os.path.join(data_dir, "jupyterhub-proxy.pid")
# The proxy from this repository's node_modules: no global npm install needed.
c.ConfigurableHTTPProxy.command = [os.path.join(REPO, "node_modules", ".bin", "configurable-http-proxy")]
# A hub that stops (SIGTERM, Ctrl-C) takes its servers and proxy with it: nothing outlives a demo or test.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

page_limit = env_int("RESUME_HUB_PAGE_DEFAULT_LIMIT", None)
if page_limit is not None:
    c.JupyterHub.api_page_default_limit = page_limit
c.JupyterHub.allow_named_servers = env("RESUME_HUB_ALLOW_NAMED_SERVERS", "0") in ("1", "true", "yes")

# Activity reaches the hub through two paths (see reference/jupyterhub.md): the hub polling the
# proxy's routes, and each server posting its own activity. The defaults (300 s each) are far too
# slow for a demo that culls after a minute or for a test.
c.JupyterHub.last_activity_interval = env_int("RESUME_HUB_LAST_ACTIVITY_INTERVAL", 10)
server_env = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(env_int("RESUME_HUB_SERVER_ACTIVITY_INTERVAL", 10))}
instance = env("RESUME_HUB_INSTANCE")
if instance:
    server_env["RESUME_HUB_INSTANCE"] = instance
c.Spawner.environment = server_env

# --- Users ---
users = env_list("RESUME_HUB_USERS", "alice,bob")
admins = env_list("RESUME_HUB_ADMIN_USERS", "admin")
# DummyAuthenticator logs that `password` is deprecated since 5.3 (SharedPasswordAuthenticator
# replaces it), but the replacement needs a separate 32-character admin password: one short shared
# password is what a local demo wants.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = env("RESUME_HUB_PASSWORD", "resume")
# allowed_users and admin_users are also created in the hub's database at startup, so the API
# lists them before anyone logs in.
c.Authenticator.allowed_users = set(users) | set(admins)
c.Authenticator.admin_users = set(admins)

# --- Servers: local processes, one home per user under the data dir ---
home_root = os.path.join(data_dir, "home")
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(home_root, "{username}")
# The venv's single-user server (absolute path): the hub's PATH may not contain the venv.
c.Spawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
if os.getuid() == 0:
    # jupyter_server refuses to run as root without it (containers and CI machines run as root).
    c.Spawner.args = ["--allow-root"]


def create_home(spawner):
    """Creates the user's home under the data dir (SimpleLocalProcessSpawner would, but only in the child)."""
    os.makedirs(os.path.join(home_root, spawner.user.name), mode=0o755, exist_ok=True)


c.Spawner.pre_spawn_hook = create_home

# --- The resume service and the agent in every kernel ---
service_name = env("RESUME_SERVICE_NAME", "resume")
service_url = env("RESUME_SERVICE_URL", "http://127.0.0.1:10101").rstrip("/")
service_token = env("RESUME_SERVICE_API_TOKEN")
if not service_token:
    raise SystemExit(
        "RESUME_SERVICE_API_TOKEN is not set: generate one (e.g. `openssl rand -hex 32`) and give the "
        "same value to the resume service as JUPYTERHUB_API_TOKEN"
    )
# The hub hands its own environment to the proxy it starts: the tokens have been read, drop them.
os.environ.pop("RESUME_SERVICE_API_TOKEN", None)
configure_resume_service(c, url=service_url, api_token=service_token, name=service_name)
install_resume_hooks(
    c,
    # The service serves under its hub prefix (the proxy does not strip it); servers call it directly.
    service_url=f"{service_url}/services/{service_name}/",
    agent_path=env("RESUME_AGENT_PATH", os.path.join(REPO, "src", "agent", "python")),
    kernelspec_dir=os.path.join(data_dir, "share", "jupyter"),
)

# --- Tests only: an admin-scoped service token, to create users' tokens and start servers ---
test_admin_token = env("RESUME_TEST_ADMIN_TOKEN")
os.environ.pop("RESUME_TEST_ADMIN_TOKEN", None)
if test_admin_token:
    c.JupyterHub.services.append({"name": "test-admin", "api_token": test_admin_token})
    c.JupyterHub.load_roles.append(
        {
            "name": "test-admin",
            "description": "Test fixture: start/stop servers, create tokens, reach every server",
            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users"],
            "services": ["test-admin"],
        }
    )
