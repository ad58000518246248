# examples/asgi/starlette_app.py: Starlette on postfork's asyncio pool, no ORM
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import postfork
import postfork.asgi

pool = postfork.AsyncPool(os.environ["DATABASE_URL"], min_idle=1, max_size=4)  # mysql+asyncmy://


async def account(request):
    account_id = request.path_params["id"]
    async with pool.connection() as conn, conn.cursor() as cursor:
        await cursor.execute("SELECT name FROM accounts WHERE id = %s", (account_id,))
        (name,) = await cursor.fetchone()
    return JSONResponse({"id": account_id, "name": name})


app = Starlette(
    routes=[Route("/accounts/{id:int}", account)],
    lifespan=postfork.asgi.lifespan(pool),  # warm before the first request; closed at shutdown
)
