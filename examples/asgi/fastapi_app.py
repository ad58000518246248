# examples/asgi/fastapi_app.py: FastAPI on SQLAlchemy's async engine, on postfork
import os

from fastapi import FastAPI
from sqlalchemy import text

import postfork.asgi
import postfork.sqlalchemy

engine = postfork.sqlalchemy.create_async_engine(os.environ["DATABASE_URL"], pool_size=4)
# every worker warm before its first request; the warm-up GET makes that request cost what a
# steady one does
app = FastAPI(lifespan=postfork.asgi.lifespan(engine, warmup_path="/accounts/1"))


@app.get("/accounts/{account_id}")
async def account(account_id: int) -> dict[str, object]:
    query = text("SELECT name FROM accounts WHERE id = :id")
    async with engine.connect() as conn:
        name = await conn.scalar(query, {"id": account_id})
    return {"id": account_id, "name": name}
