//! Whether the bot may send in a thread or channel created (or a channel changed) after
//! GUILD_CREATE: the little of each guild that decides it, kept from the gateway's events
//! instead of in serenity's cache.
//!
//! A thread follows its parent channel's permissions (View Channel and Send Messages in
//! Threads), so per guild this keeps what [`Guild::user_permissions_in`] reads for a parent:
//! the guild's owner, its roles' permissions, the bot's roles, and each channel's permission
//! overwrites for roles and for the bot. Nothing else: no channel names or topics, no other
//! members, no messages. serenity's cache (its `cache` feature, which troupe no longer builds)
//! held the whole guild for every agent and updated it on every event.
//!
//! Kept up to date, as the cache was, by the events that change the answer: CHANNEL_CREATE,
//! CHANNEL_UPDATE and CHANNEL_DELETE (a parent's overwrites), GUILD_ROLE_CREATE, _UPDATE and
//! _DELETE (a role's permissions), GUILD_UPDATE (owner and roles), GUILD_MEMBER_UPDATE of the
//! bot itself (its roles) and GUILD_DELETE. Discord lists GUILD_MEMBER_UPDATE under the
//! GUILD_MEMBERS intent, which troupe does not ask for: where it does not arrive, a change of
//! the bot's roles is seen at the next GUILD_CREATE, as with the cache, which depended on the
//! same event. Not kept, because a new thread's answer does not depend on them: threads
//! themselves (their permissions are their parent's), channel names and slowmode (the thread's
//! own come with THREAD_CREATE).
//!
//! A channel's own answer (View Channel and Send Messages) is read the same way when
//! CHANNEL_CREATE or CHANNEL_UPDATE announces it to the agent ([`ThreadParents::channel_info`]).
//!
//! serenity runs each event's handler on its own task, so a GUILD_CREATE or a role or guild
//! update and a THREAD_CREATE or CHANNEL_CREATE that follows it within moments may be applied in
//! either order (the cache applied events in gateway order before the handlers ran). Channel and
//! thread announcements themselves are made in gateway order ([`super::ordered`]). A thread
//! keeps the answer computed when it was announced: a later change of its parent is not carried
//! to it.

use std::collections::HashMap;

use serenity::all::{
    ChannelId, Guild, GuildChannel, GuildId, Member, PermissionOverwrite, PermissionOverwriteType, Permissions, Role,
    RoleId, UserId,
};

use crate::channels::ChannelInfo;

/// What decides a new thread's permissions, per guild the bot is in.
#[derive(Debug, Default)]
pub struct ThreadParents {
    guilds: HashMap<GuildId, GuildPermissions>,
}

/// One guild's permission inputs.
#[derive(Debug)]
struct GuildPermissions {
    /// Only the ID, the owner and the roles (each stripped to its permissions): what
    /// [`Guild::user_permissions_in`] reads besides the channel and the member.
    guild: Guild,
    /// The bot as a member (its user ID and roles); `None` if GUILD_CREATE did not list it.
    me: Option<Member>,
    /// Each channel a thread may be created in, with the overwrites that can concern the bot
    /// (every role's, and the bot's own).
    parents: HashMap<ChannelId, Vec<PermissionOverwrite>>,
}

impl ThreadParents {
    /// A GUILD_CREATE: the guild's inputs, replacing any kept earlier. `me` is the bot's user.
    pub fn guild_create(&mut self, guild: &Guild, me: UserId) {
        let mut kept = Guild::default();
        kept.id = guild.id;
        kept.owner_id = guild.owner_id;
        kept.roles = guild.roles.values().map(|r| (r.id, stripped(r))).collect();
        let me_member = guild.members.get(&me).map(|m| {
            let mut member = Member::default();
            member.user.id = me;
            member.guild_id = guild.id;
            member.roles.clone_from(&m.roles);
            member
        });
        let parents = guild
            .channels
            .values()
            .map(|c| (c.id, concerning(&c.permission_overwrites, me)))
            .collect();
        self.guilds.insert(
            guild.id,
            GuildPermissions {
                guild: kept,
                me: me_member,
                parents,
            },
        );
    }

    /// A GUILD_DELETE: the bot left the guild, or it became unavailable (a GUILD_CREATE follows
    /// when it is back).
    pub fn guild_delete(&mut self, guild: GuildId) {
        self.guilds.remove(&guild);
    }

    /// A GUILD_UPDATE: the guild's owner and roles.
    pub fn guild_update(&mut self, guild: GuildId, owner: UserId, roles: &HashMap<RoleId, Role>) {
        if let Some(g) = self.guilds.get_mut(&guild) {
            g.guild.owner_id = owner;
            g.guild.roles = roles.values().map(|r| (r.id, stripped(r))).collect();
        }
    }

    /// A CHANNEL_CREATE or CHANNEL_UPDATE of a (non-thread) channel.
    pub fn channel_upsert(&mut self, channel: &GuildChannel, me: UserId) {
        if let Some(g) = self.guilds.get_mut(&channel.guild_id) {
            g.parents
                .insert(channel.id, concerning(&channel.permission_overwrites, me));
        }
    }

    /// A CHANNEL_DELETE.
    pub fn channel_delete(&mut self, guild: GuildId, channel: ChannelId) {
        if let Some(g) = self.guilds.get_mut(&guild) {
            g.parents.remove(&channel);
        }
    }

    /// A GUILD_ROLE_CREATE or GUILD_ROLE_UPDATE.
    pub fn role_upsert(&mut self, role: &Role) {
        if let Some(g) = self.guilds.get_mut(&role.guild_id) {
            g.guild.roles.insert(role.id, stripped(role));
        }
    }

    /// A GUILD_ROLE_DELETE.
    pub fn role_delete(&mut self, guild: GuildId, role: RoleId) {
        if let Some(g) = self.guilds.get_mut(&guild) {
            g.guild.roles.remove(&role);
            if let Some(me) = &mut g.me {
                me.roles.retain(|r| *r != role);
            }
        }
    }

    /// A GUILD_MEMBER_UPDATE: only the bot's own roles matter.
    pub fn member_update(&mut self, guild: GuildId, user: UserId, roles: &[RoleId]) {
        if let Some(g) = self.guilds.get_mut(&guild) {
            if let Some(me) = g.me.as_mut().filter(|me| me.user.id == user) {
                me.roles = roles.to_vec();
            }
        }
    }

    /// A new thread as the agent sees it, writable if the bot may view its parent and send
    /// messages in its threads. `None` if its guild or its parent is unknown (then no thread is
    /// announced, as when serenity's cache did not hold the guild).
    pub fn thread_info(&self, thread: &GuildChannel) -> Option<ChannelInfo> {
        let parent_id = thread.parent_id?;
        let writable = self.may(thread.guild_id, parent_id, |p| {
            p.view_channel() && p.send_messages_in_threads()
        })?;
        Some(ChannelInfo {
            id: thread.id.get(),
            name: thread.name.clone(),
            guild_id: thread.guild_id.get(),
            writable,
            slowmode: std::time::Duration::from_secs(u64::from(thread.rate_limit_per_user.unwrap_or(0))),
            parent_id: Some(parent_id.get()),
        })
    }

    /// A channel created or changed after GUILD_CREATE (not a thread), as the agent sees it,
    /// once [`ThreadParents::channel_upsert`] has kept its overwrites: writable if it holds
    /// messages and the bot may view it and send messages there. `None` if its guild is
    /// unknown.
    pub fn channel_info(&self, channel: &GuildChannel) -> Option<ChannelInfo> {
        let may = self.may(channel.guild_id, channel.id, |p| p.view_channel() && p.send_messages())?;
        // As at GUILD_CREATE: a category, forum or directory holds no messages of its own.
        let writable = may && channel.is_text_based();
        Some(ChannelInfo {
            id: channel.id.get(),
            name: channel.name.clone(),
            guild_id: channel.guild_id.get(),
            writable,
            slowmode: std::time::Duration::from_secs(u64::from(channel.rate_limit_per_user.unwrap_or(0))),
            parent_id: None,
        })
    }

    /// Whether the bot's permissions in kept channel `channel` of `guild` pass `check` (`false`
    /// if GUILD_CREATE did not list the bot); `None` if the guild or the channel is unknown.
    fn may(&self, guild: GuildId, channel: ChannelId, check: impl Fn(Permissions) -> bool) -> Option<bool> {
        let g = self.guilds.get(&guild)?;
        let overwrites = g.parents.get(&channel)?;
        Some(g.me.as_ref().is_some_and(|me| {
            let mut kept = GuildChannel::default();
            kept.id = channel;
            kept.guild_id = guild;
            kept.permission_overwrites.clone_from(overwrites);
            check(g.guild.user_permissions_in(&kept, me))
        }))
    }
}

/// A role reduced to what permissions are computed from.
fn stripped(role: &Role) -> Role {
    let mut kept = Role::default();
    kept.id = role.id;
    kept.guild_id = role.guild_id;
    kept.permissions = role.permissions;
    kept
}

/// The overwrites that can apply to the bot: every role's (the bot's roles may change) and the
/// bot's own; other members' are dropped.
fn concerning(overwrites: &[PermissionOverwrite], me: UserId) -> Vec<PermissionOverwrite> {
    overwrites
        .iter()
        .filter(|o| match o.kind {
            PermissionOverwriteType::Role(_) => true,
            PermissionOverwriteType::Member(user) => user == me,
            _ => false,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
pub(in crate::discord) mod tests {
    use serenity::all::{ChannelType, Permissions};

    use super::*;

    pub(in crate::discord) const GUILD: u64 = 100;
    pub(in crate::discord) const ME: u64 = 7;
    const BOTS: u64 = 300;
    pub(in crate::discord) const GENERAL: u64 = 10;
    const NEWS: u64 = 11;

    fn role(id: u64, permissions: Permissions) -> Role {
        let mut r = Role::default();
        r.id = RoleId::new(id);
        r.guild_id = GuildId::new(GUILD);
        r.name = format!("role {id}");
        r.permissions = permissions;
        r
    }

    fn channel(id: u64, overwrites: Vec<PermissionOverwrite>) -> GuildChannel {
        let mut c = GuildChannel::default();
        c.id = ChannelId::new(id);
        c.guild_id = GuildId::new(GUILD);
        c.kind = ChannelType::Text;
        c.name = format!("channel-{id}");
        c.permission_overwrites = overwrites;
        c
    }

    fn deny(kind: PermissionOverwriteType, deny: Permissions) -> PermissionOverwrite {
        PermissionOverwrite {
            allow: Permissions::empty(),
            deny,
            kind,
        }
    }

    fn everyone_may_talk() -> Permissions {
        Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES | Permissions::SEND_MESSAGES_IN_THREADS
    }

    /// A guild where @everyone may talk, the bot has the role BOTS (no permissions of its
    /// own), and NEWS denies the bot Send Messages (in Threads too), as the sandbox's
    /// `read_only_for` does.
    pub(in crate::discord) fn guild() -> Guild {
        let mut g = Guild::default();
        g.id = GuildId::new(GUILD);
        g.owner_id = UserId::new(1);
        g.roles = [role(GUILD, everyone_may_talk()), role(BOTS, Permissions::empty())]
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut me = Member::default();
        me.user.id = UserId::new(ME);
        me.guild_id = g.id;
        me.roles = vec![RoleId::new(BOTS)];
        let mut someone = Member::default();
        someone.user.id = UserId::new(8);
        g.members = [(me.user.id, me), (someone.user.id, someone)].into_iter().collect();
        let read_only = deny(
            PermissionOverwriteType::Member(UserId::new(ME)),
            Permissions::SEND_MESSAGES | Permissions::SEND_MESSAGES_IN_THREADS,
        );
        let other = deny(
            PermissionOverwriteType::Member(UserId::new(8)),
            Permissions::VIEW_CHANNEL,
        );
        g.channels = [channel(GENERAL, vec![other]), channel(NEWS, vec![read_only])]
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        g
    }

    pub(in crate::discord) fn thread(id: u64, parent: u64) -> GuildChannel {
        let mut t = channel(id, vec![]);
        t.kind = ChannelType::PublicThread;
        t.name = format!("thread-{id}");
        t.parent_id = Some(ChannelId::new(parent));
        t.rate_limit_per_user = Some(5);
        t
    }

    fn parents() -> ThreadParents {
        let mut p = ThreadParents::default();
        p.guild_create(&guild(), UserId::new(ME));
        p
    }

    fn writable(p: &ThreadParents, parent: u64) -> bool {
        p.thread_info(&thread(50, parent)).expect("known parent").writable
    }

    #[test]
    fn a_thread_follows_its_parents_permissions() {
        let p = parents();
        let info = p.thread_info(&thread(50, GENERAL)).unwrap();
        assert!(info.writable);
        assert_eq!(
            (info.id, info.name.as_str(), info.guild_id, info.parent_id),
            (50, "thread-50", GUILD, Some(GENERAL))
        );
        assert_eq!(info.slowmode, std::time::Duration::from_secs(5));
        assert!(!writable(&p, NEWS), "the bot may not send in NEWS's threads");
    }

    #[test]
    fn the_same_answer_as_the_whole_guild_gives() {
        // What the cache-based code computed: the full guild, with the thread in it.
        let mut full = guild();
        let me = full.members[&UserId::new(ME)].clone();
        for parent in [GENERAL, NEWS] {
            let c = full.channels[&ChannelId::new(parent)].clone();
            let expected = full.user_permissions_in(&c, &me);
            let expected = expected.view_channel() && expected.send_messages_in_threads();
            assert_eq!(writable(&parents(), parent), expected, "parent {parent}");
        }
        full.owner_id = UserId::new(ME);
        let mut p = ThreadParents::default();
        p.guild_create(&full, UserId::new(ME));
        assert!(writable(&p, NEWS), "the owner may do anything");
    }

    #[test]
    fn a_channel_created_or_changed_later_reads_its_own_overwrites() {
        let mut p = parents();
        let me = UserId::new(ME);
        // Created after GUILD_CREATE, muted for the bot, as GENERAL's CHANNEL_UPDATE later.
        let mut late = channel(
            12,
            vec![deny(PermissionOverwriteType::Member(me), Permissions::SEND_MESSAGES)],
        );
        late.rate_limit_per_user = Some(3);
        p.channel_upsert(&late, me);
        let info = p.channel_info(&late).expect("its guild is known");
        assert!(!info.writable);
        assert_eq!(
            (info.id, info.name.as_str(), info.guild_id, info.parent_id),
            (12, "channel-12", GUILD, None)
        );
        assert_eq!(info.slowmode, std::time::Duration::from_secs(3));
        late.permission_overwrites.clear();
        p.channel_upsert(&late, me);
        assert!(p.channel_info(&late).unwrap().writable);
        // The same answer as the whole guild gives, for every channel of it.
        let full = guild();
        let member = full.members[&me].clone();
        for c in full.channels.values() {
            let expected = full.user_permissions_in(c, &member);
            let info = p.channel_info(c).unwrap();
            assert_eq!(
                info.writable,
                expected.view_channel() && expected.send_messages(),
                "{}",
                c.id
            );
        }
        let mut elsewhere = late.clone();
        elsewhere.guild_id = GuildId::new(GUILD + 1);
        p.channel_upsert(&elsewhere, me);
        assert!(
            p.channel_info(&elsewhere).is_none(),
            "an unknown guild announces nothing"
        );
    }

    #[test]
    fn an_unknown_guild_or_parent_announces_no_thread() {
        let p = parents();
        let mut elsewhere = thread(50, GENERAL);
        elsewhere.guild_id = GuildId::new(GUILD + 1);
        assert!(p.thread_info(&elsewhere).is_none());
        assert!(p.thread_info(&thread(50, 12)).is_none());
        let mut orphan = thread(50, GENERAL);
        orphan.parent_id = None;
        assert!(p.thread_info(&orphan).is_none());
    }

    #[test]
    fn a_bot_missing_from_guild_create_may_not_send() {
        let mut g = guild();
        g.members.remove(&UserId::new(ME));
        let mut p = ThreadParents::default();
        p.guild_create(&g, UserId::new(ME));
        assert!(!writable(&p, GENERAL));
    }

    #[test]
    fn a_channel_update_changes_its_new_threads() {
        let mut p = parents();
        let hidden = deny(
            PermissionOverwriteType::Role(RoleId::new(BOTS)),
            Permissions::VIEW_CHANNEL,
        );
        p.channel_upsert(&channel(GENERAL, vec![hidden]), UserId::new(ME));
        assert!(!writable(&p, GENERAL));
        p.channel_upsert(&channel(NEWS, vec![]), UserId::new(ME));
        assert!(writable(&p, NEWS), "the read-only overwrite was removed");
    }

    #[test]
    fn a_channel_created_after_guild_create_is_a_parent() {
        let mut p = parents();
        assert!(p.thread_info(&thread(50, 12)).is_none());
        p.channel_upsert(&channel(12, vec![]), UserId::new(ME));
        assert!(writable(&p, 12));
        p.channel_delete(GuildId::new(GUILD), ChannelId::new(12));
        assert!(p.thread_info(&thread(50, 12)).is_none());
    }

    #[test]
    fn role_changes_change_new_threads() {
        let mut p = parents();
        p.role_upsert(&role(GUILD, Permissions::VIEW_CHANNEL));
        assert!(!writable(&p, GENERAL), "@everyone lost Send Messages in Threads");
        p.role_upsert(&role(BOTS, Permissions::SEND_MESSAGES_IN_THREADS));
        assert!(writable(&p, GENERAL), "the bot's role gives it back");
        p.role_delete(GuildId::new(GUILD), RoleId::new(BOTS));
        assert!(!writable(&p, GENERAL), "and takes it away when deleted");
    }

    #[test]
    fn the_bots_roles_and_the_guilds_roles_follow_updates() {
        let mut p = parents();
        p.role_upsert(&role(GUILD, Permissions::VIEW_CHANNEL));
        p.role_upsert(&role(301, Permissions::SEND_MESSAGES_IN_THREADS));
        assert!(!writable(&p, GENERAL));
        p.member_update(GuildId::new(GUILD), UserId::new(8), &[RoleId::new(301)]);
        assert!(!writable(&p, GENERAL), "another member's roles do not matter");
        p.member_update(GuildId::new(GUILD), UserId::new(ME), &[RoleId::new(301)]);
        assert!(writable(&p, GENERAL));
        let roles = [role(GUILD, everyone_may_talk())]
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        p.guild_update(GuildId::new(GUILD), UserId::new(1), &roles);
        assert!(writable(&p, GENERAL), "role 301 is gone, @everyone may talk again");
        p.guild_delete(GuildId::new(GUILD));
        assert!(p.thread_info(&thread(50, GENERAL)).is_none());
    }

    #[test]
    fn only_overwrites_that_can_concern_the_bot_are_kept() {
        let p = parents();
        let g = &p.guilds[&GuildId::new(GUILD)];
        assert!(
            g.parents[&ChannelId::new(GENERAL)].is_empty(),
            "another member's overwrite"
        );
        assert_eq!(g.parents[&ChannelId::new(NEWS)].len(), 1);
        assert!(g.guild.roles.values().all(|r| r.name.is_empty()), "roles keep no names");
        assert!(g.guild.members.is_empty() && g.guild.channels.is_empty());
    }
}
