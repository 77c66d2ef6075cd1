"""A discord.py bot's everyday REST calls against a running sandbox: a manual check, not run by
CI (it needs discord.py from PyPI). Every call must succeed or fail with Discord's error.

    python -m venv /tmp/dpy && /tmp/dpy/bin/pip install discord.py
    troupe sandbox --config agents.toml --listen 127.0.0.1:8686   # with an agent named Ada
    /tmp/dpy/bin/python crates/sandbox/tests/clients/discord_py.py http://127.0.0.1:8686

Only REST is exercised here.
"""
import asyncio
import io
import sys

import aiohttp
import discord

BASE = sys.argv[1]
discord.http.Route.BASE = BASE + "/api/v10"

async def main():
    client = discord.Client(intents=discord.Intents.default())
    await client.login("sandbox.ada")
    print("login ok:", client.user, "app:", client.application_id)
    info = await client.application_info()
    print("app info:", info.name, info.owner)
    async with aiohttp.ClientSession() as s:
        state = await (await s.get(BASE + "/sandbox/state")).json()
    general = int(next(c["id"] for c in state["channels"] if c["name"] == "general"))
    gid = int(state["guilds"][0]["id"])
    ch = await client.fetch_channel(general)
    print("channel:", ch)
    g = await client.fetch_guild(gid)
    print("guild:", g.name, "roles:", len(g.roles))
    chans = await g.fetch_channels()
    print("guild channels:", [c.name for c in chans])
    me = await g.fetch_member(client.user.id)
    print("member:", me)
    m = await ch.send("The", silent=True)
    print("sent:", m.id, m.flags.suppress_notifications)
    m = await m.edit(content="The streamed answer", embed=discord.Embed(title="t", description="d"))
    print("edited:", m.content, m.edited_at, m.embeds[0].type)
    await m.add_reaction("👍")
    m = await ch.fetch_message(m.id)
    print("reactions:", [(str(r.emoji), r.count, r.me) for r in m.reactions])
    users = [u async for u in m.reactions[0].users()]
    print("reactors:", users)
    await m.remove_reaction("👍", client.user)
    await m.pin()
    pins = [p async for p in ch.pins()]
    print("pins:", [p.id for p in pins])
    await m.unpin()
    th = await m.create_thread(name="talk")
    print("thread:", th.id == m.id, th.name)
    th2 = await ch.create_thread(name="solo", type=discord.ChannelType.public_thread)
    print("thread2:", th2.name)
    f = await ch.send("file", file=discord.File(io.BytesIO(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x08" + b"\0"*16), filename="x.png"))
    a = f.attachments[0]
    print("attachment:", a.filename, a.size, a.width, a.height, a.content_type, a.url)
    data = await a.read()
    print("read back:", len(data))
    wh = await ch.create_webhook(name="Persona")
    print("webhook:", wh.id, len(wh.token))
    hooks = await ch.webhooks()
    print("hooks:", len(hooks))
    async with aiohttp.ClientSession() as s:
        w2 = discord.Webhook.from_url(f"https://discord.com/api/webhooks/{wh.id}/{wh.token}", session=s)
        wm = await w2.send("hi from hook", username="Ada persona", wait=True, thread=th)
        print("webhook msg:", wm.id, wm.channel.id == th.id)
        wm = await wm.edit(content="hi edited")
        print("webhook edit:", wm.content)
        await wm.delete()
        try:
            await w2.send("x", username="clyde")
        except discord.HTTPException as e:
            print("clyde refused:", e.status, e.code, e.text)
        bad = discord.Webhook.from_url(f"https://discord.com/api/webhooks/{wh.id}/{'x'*68}", session=s)
        try:
            await bad.send("x")
        except discord.HTTPException as e:
            print("bad token:", e.status, e.code)
    await wh.edit(name="Renamed")
    await wh.delete()
    m2 = await ch.send("tmp1"); m3 = await ch.send("tmp2")
    await ch.delete_messages([m2, m3])
    await f.delete()
    try:
        await ch.send(embed=discord.Embed(title="x"*257))
    except discord.HTTPException as e:
        print("title 257:", e.status, e.code, e.text)
    print("ALL DONE")
    await client.close()

asyncio.run(main())
