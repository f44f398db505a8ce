"""Registers the jupyterhub-resume service with a JupyterHub, with the least permissions it needs.

Use it from any ``jupyterhub_config.py`` (plain JupyterHub, or z2jh's ``hub.extraConfig``)::

    from resume_service import configure_resume_service
    configure_resume_service(c, url="http://resume:8080", api_token=os.environ["RESUME_SERVICE_API_TOKEN"])

The service runs *externally* (its own process or pod): the hub only routes ``/services/<name>/``
to ``url``, maps ``api_token`` to the service, and lets users log in to it with OAuth.
"""

from traitlets.config import LazyConfigValue

#: The hub scopes the service's own token holds, and why. This is the whole list: the service
#: cannot start servers, read auth state or manage users. (docs/reference and hub-config/README list
#: the same scopes for operators.)
SERVICE_SCOPES = [
    # GET /hub/api/users: find every user with a running server (the culler's sweep, the drain).
    "list:users",
    # The `servers` field of the user model: ready/pending, url, started and last_activity per server
    # (the culler compares each server's own last_activity with its timeout; the user-level
    # activity, `read:users:activity`, is not needed).
    "read:servers",
    # DELETE /hub/api/users/:name/server[s/:server]: stop an idle server once it is checkpointed.
    "delete:servers",
    # Call every user server's Jupyter API (kernels, sessions, kernel websockets): the service
    # talks to the agent inside each kernel to checkpoint it. Guard this token: it can run code
    # in any user's kernel.
    "access:servers",
]


def _config_list(section, key):
    """Returns ``section[key]`` as a real list stored back in the config.

    Earlier config may have left nothing, a list, or a LazyConfigValue (``c.X.y.append(...)`` on an
    unset trait); we need a concrete list to look entries up by name.
    """
    value = section[key] if key in section else None
    if value is None:
        items = []
    elif isinstance(value, LazyConfigValue):
        items = list(value.get_value([]))
    else:
        items = list(value)
    section[key] = items
    return items


def _put_named(items, entry):
    """Replaces the entry with the same ``name`` in ``items``, or appends it (so calling twice is harmless)."""
    for i, existing in enumerate(items):
        if existing.get("name") == entry["name"]:
            items[i] = entry
            return
    items.append(entry)


def configure_resume_service(c, *, url, api_token, name="resume", display=True):
    """Adds the resume service, its role, and the users' permission to use it, to a hub config.

    :param c: the hub's config object (``c`` in ``jupyterhub_config.py``).
    :param url: where the hub and the proxy reach the service, e.g. ``http://127.0.0.1:10101``;
        the proxy forwards ``/services/<name>/`` there without stripping the prefix.
    :param api_token: the service's hub API token (also its OAuth client secret). Keep it secret.
    :param name: the service name: its URL prefix is ``/services/<name>/``.
    :param display: whether the hub's home page lists the service ("Services" menu).
    """
    if not api_token:
        raise ValueError(
            "configure_resume_service: api_token is empty; generate one (e.g. `openssl rand -hex 32`) "
            "and give the same value to the service as JUPYTERHUB_API_TOKEN"
        )

    services = _config_list(c.JupyterHub, "services")
    _put_named(
        services,
        {
            "name": name,
            "url": url,
            "api_token": api_token,
            # Users reach their resume page through hub OAuth; asking them to "authorize" a
            # service the admin installed is noise.
            "oauth_no_confirm": True,
            "display": display,
        },
    )

    roles = _config_list(c.JupyterHub, "load_roles")
    _put_named(
        roles,
        {
            "name": f"{name}-service",
            "description": "jupyterhub-resume: checkpoint idle servers before culling them",
            "scopes": list(SERVICE_SCOPES),
            "services": [name],
        },
    )

    # Services have no default role, and the default `user` role (`self`) does not include access
    # to services: without this scope users could neither log in to the resume page nor call the
    # service's API with their own tokens. Merge into a `user` role configured earlier, if any.
    access = f"access:services!service={name}"
    for role in roles:
        if role.get("name") == "user":
            scopes = list(role.get("scopes") or ["self"])
            if access not in scopes:
                scopes.append(access)
            role["scopes"] = scopes
            break
    else:
        roles.append(
            {
                "name": "user",
                "description": "Everything a user can do to themselves, plus using the resume service",
                "scopes": ["self", access],
            }
        )
