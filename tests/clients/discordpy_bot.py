"""A discord.py bot run against the troupe sandbox by tests/other_client.rs.

Only two things differ from a bot on Discord: the REST base URL (discord.py's
`http.Route.BASE`) and the gateway URL (read from the sandbox's `GET /gateway`). The human side
of each check (a person posting, using a slash command) goes through the sandbox's control API.

Prints one line per check, `ok NAME` or `fail NAME: why`, then `done`. Every check runs even if
an earlier one failed; a check that needs login reports `fail NAME: not run, login failed`.

Environment: SANDBOX_URL (http://HOST:PORT), BOT_TOKEN, CHANNEL (a channel name), HUMAN (a
human's name).
"""

import asyncio
import io
import os
import sys
import traceback

import aiohttp
import discord
import yarl
from discord import app_commands

SANDBOX = os.environ["SANDBOX_URL"].rstrip("/")
TOKEN = os.environ["BOT_TOKEN"]
CHANNEL = os.environ.get("CHANNEL", "general")
HUMAN = os.environ.get("HUMAN", "alice")
# How long one check may wait for an event before it fails.
WAIT = float(os.environ.get("CHECK_TIMEOUT", "20"))

CHECKS = [
    "login", "reply", "embed", "dm", "history", "typing", "edit", "delete",
    "files", "reactions", "threads", "webhooks", "slash_command",
]

# A 1x1 PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000"
    "000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082"
)


def report(name, error=None):
    if error is None:
        print(f"ok {name}", flush=True)
    else:
        why = str(error).replace("\n", " ")[:300] or type(error).__name__
        print(f"fail {name}: {type(error).__name__}: {why}", flush=True)


class Bot(discord.Client):
    def __init__(self):
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents)
        self.tree = app_commands.CommandTree(self)
        self.ready = asyncio.Event()
        self.interactions = asyncio.Queue()

        @self.tree.command(name="ping", description="Replies pong")
        async def ping(interaction: discord.Interaction):
            await interaction.response.send_message("pong")
            await self.interactions.put(interaction)

    async def on_ready(self):
        self.ready.set()


async def control(session, method, path, body=None):
    async with session.request(method, f"{SANDBOX}/sandbox{path}", json=body) as r:
        data = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"control {method} {path}: {r.status} {data}")
        return data


async def wait_event(bot, event, check):
    return await bot.wait_for(event, check=check, timeout=WAIT)


async def check_reply(bot, session, channel, state):
    got = asyncio.ensure_future(wait_event(bot, "message", lambda m: m.content == "ping from a human"))
    await control(session, "POST", "/messages", {"channel": CHANNEL, "author": HUMAN, "content": "ping from a human"})
    message = await got
    reply = await message.reply("pong")
    assert reply.reference and reply.reference.message_id == message.id, "the reply references no message"
    seen = await control(session, "GET", f"/channels/{channel.id}/messages")
    assert any(m["id"] == str(reply.id) for m in seen), "the reply is not in the channel"
    state["human_message"] = message


async def check_embed(bot, session, channel, state):
    embed = discord.Embed(title="Status", description="All good", colour=0x00FF00)
    embed.add_field(name="uptime", value="3 days")
    sent = await channel.send(embed=embed)
    fetched = await channel.fetch_message(sent.id)
    assert fetched.embeds and fetched.embeds[0].title == "Status", f"embeds came back as {fetched.embeds}"
    assert fetched.embeds[0].fields[0].value == "3 days"


async def check_dm(bot, session, channel, state):
    human = await bot.fetch_user(state["human_id"])
    sent = await human.send("a private word")
    assert isinstance(sent.channel, discord.DMChannel), f"sent to {type(sent.channel).__name__}"
    got = asyncio.ensure_future(wait_event(bot, "message", lambda m: m.guild is None and m.content == "and back"))
    await control(session, "POST", "/messages", {"dm": bot.user.name, "author": HUMAN, "content": "and back"})
    await got


async def check_history(bot, session, channel, state):
    history = [m async for m in channel.history(limit=20)]
    assert any(m.content == "ping from a human" for m in history), "the human's message is not in the history"
    ids = [m.id for m in history]
    assert ids == sorted(ids, reverse=True), "history is not newest first"


async def check_typing(bot, session, channel, state):
    async with channel.typing():
        pass


async def check_edit(bot, session, channel, state):
    sent = await channel.send("draft")
    edited = asyncio.ensure_future(wait_event(bot, "raw_message_edit", lambda p: p.message_id == sent.id))
    await sent.edit(content="final")
    await edited
    fetched = await channel.fetch_message(sent.id)
    assert fetched.content == "final", f"content is {fetched.content!r}"
    assert fetched.edited_at is not None, "no edited_timestamp"


async def check_delete(bot, session, channel, state):
    sent = await channel.send("short-lived")
    deleted = asyncio.ensure_future(wait_event(bot, "raw_message_delete", lambda p: p.message_id == sent.id))
    await sent.delete()
    await deleted
    try:
        await channel.fetch_message(sent.id)
    except discord.NotFound:
        return
    raise AssertionError("the deleted message can still be fetched")


async def check_files(bot, session, channel, state):
    sent = await channel.send("a file", file=discord.File(io.BytesIO(PIXEL), filename="pixel.png"))
    assert len(sent.attachments) == 1, f"{len(sent.attachments)} attachments"
    attachment = sent.attachments[0]
    assert attachment.filename == "pixel.png" and attachment.size == len(PIXEL), f"{attachment!r}"
    assert (attachment.width, attachment.height) == (1, 1), f"size {attachment.width}x{attachment.height}"
    assert await attachment.read() == PIXEL, "the served file differs from the upload"


async def check_reactions(bot, session, channel, state):
    sent = await channel.send("react to me")
    added = asyncio.ensure_future(wait_event(bot, "raw_reaction_add", lambda p: p.message_id == sent.id))
    await sent.add_reaction("👍")
    await added
    fetched = await channel.fetch_message(sent.id)
    assert [(str(r.emoji), r.count) for r in fetched.reactions] == [("👍", 1)], f"{fetched.reactions}"
    users = [u async for u in fetched.reactions[0].users()]
    assert [u.id for u in users] == [bot.user.id], f"reacted: {users}"
    removed = asyncio.ensure_future(wait_event(bot, "raw_reaction_remove", lambda p: p.message_id == sent.id))
    await sent.remove_reaction("👍", bot.user)
    await removed
    assert not (await channel.fetch_message(sent.id)).reactions, "the reaction is still there"


async def check_threads(bot, session, channel, state):
    starter = await channel.send("thread starter")
    thread = await starter.create_thread(name="from a message")
    posted = await thread.send("inside")
    assert posted.channel.id == thread.id
    loose = await channel.create_thread(name="no starter", type=discord.ChannelType.public_thread)
    assert loose.parent_id == channel.id, f"parent {loose.parent_id}"


async def check_webhooks(bot, session, channel, state):
    hook = await channel.create_webhook(name="Announcer")
    assert hook.id in [h.id for h in await channel.webhooks()], "the webhook is not listed"
    sent = await hook.send("via webhook", username="Herald", wait=True)
    assert sent.author.name == "Herald" and sent.webhook_id == hook.id, f"author {sent.author}"
    # A webhook from its URL, as another program would use it.
    by_url = discord.Webhook.from_url(hook.url, session=session)
    again = await by_url.send("by url", wait=True)
    await by_url.edit_message(again.id, content="by url, edited")
    await hook.delete()
    try:
        await by_url.send("after delete", wait=True)
    except discord.NotFound:
        return
    raise AssertionError("a deleted webhook still posts")


async def check_slash_command(bot, session, channel, state):
    synced = await bot.tree.sync()
    assert [c.name for c in synced] == ["ping"], f"synced {synced}"
    await control(session, "POST", "/interactions", {"channel": CHANNEL, "author": HUMAN, "command": "ping"})
    interaction = await asyncio.wait_for(bot.interactions.get(), timeout=WAIT)
    original = await interaction.original_response()
    assert original.content == "pong", f"original response {original.content!r}"
    await interaction.edit_original_response(content="pong!")
    follow = await interaction.followup.send("and a followup", wait=True)
    assert follow.content == "and a followup"


async def main():
    # The two changes a bot needs to use the sandbox instead of Discord.
    discord.http.Route.BASE = f"{SANDBOX}/api/v10"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{SANDBOX}/api/v10/gateway") as r:
            gateway = (await r.json())["url"]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)

        bot = Bot()
        runner = None
        try:
            await bot.login(TOKEN)
            runner = asyncio.ensure_future(bot.connect(reconnect=False))
            await asyncio.wait_for(bot.ready.wait(), timeout=WAIT)
            report("login")
        except Exception as e:  # noqa: BLE001: every failure is a reported check
            report("login", e)
            await bot.close()
            for name in CHECKS[1:]:
                report(name, RuntimeError("not run, login failed"))
            print("done", flush=True)
            return

        world = await control(session, "GET", "/state")
        state = {"human_id": next(int(u["id"]) for u in world["users"] if u["name"] == HUMAN)}
        channel_id = next(int(c["id"]) for c in world["channels"] if c["name"] == CHANNEL)
        channel = bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)
        for name in CHECKS[1:]:
            try:
                await globals()[f"check_{name}"](bot, session, channel, state)
                report(name)
            except Exception as e:  # noqa: BLE001
                if os.environ.get("CHECK_TRACEBACKS"):
                    traceback.print_exc(file=sys.stderr)
                report(name, e)
        await bot.close()
        if runner is not None:
            await asyncio.wait([runner], timeout=WAIT)
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
