"""The web app's routers, one module per part of the API: ``login`` (login,
logout, pages, static files), ``status`` (status and arming), ``live`` (the
live streams and the event feed), ``events`` (events and clips as JSON) and
``media`` (files: snapshots, clips, anything under the recordings folder).
Each module's ``router(ctx)`` builds its ``APIRouter`` on the shared
``WebContext``; ``services.web.app`` mounts them."""
