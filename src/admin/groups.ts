import type { FastifyPluginAsync } from "fastify";
import type { GroupInfo } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Uid } from "../ids/identifiers.js";
import { GROUP_ROLE } from "../storage/ports.js";
import { groupOwner } from "./acting.js";
import type { AdminDeps } from "./deps.js";
import { adminReplies, groupIdSchema, groupParams, groupSchema, okSchema, okWith, uidSchema } from "./schemas.js";

const memberParams = {
  type: "object",
  properties: { groupId: groupIdSchema, uid: uidSchema },
  required: ["groupId", "uid"],
} as const;

const ROLES = { member: GROUP_ROLE.member, admin: GROUP_ROLE.admin, owner: GROUP_ROLE.owner } as const;

function groupJson(g: GroupInfo | undefined) {
  if (!g) throw new AppError(ErrorCode.INTERNAL, "the chat node answered no group");
  return {
    groupId: g.groupId,
    convId: g.convId,
    name: g.name,
    owner: g.owner,
    memberCount: g.memberCount,
    createdAtMs: g.createdAtMs,
    ...(g.dissolved ? { dissolved: true } : {}),
  };
}

/**
 * Groups: create, add and remove members, set roles, dissolve. Each change runs on the chat
 * node of the group's owner as a privileged request (whatever the role; members are added
 * without being asked), so members are told at once as with a client's change.
 */
export const adminGroupRoutes: FastifyPluginAsync<AdminDeps> = async (app, deps) => {
  const { chat, users } = deps;

  app.post<{ Body: { owner: Uid; name: string; members?: Uid[] } }>(
    "/admin/v1/groups",
    {
      schema: {
        summary: "Create a group owned by a user, with members added directly",
        tags: ["groups"],
        body: {
          type: "object",
          properties: {
            owner: uidSchema,
            name: { type: "string", minLength: 1, maxLength: 200 },
            members: { type: "array", items: uidSchema, maxItems: 10_000 },
          },
          required: ["owner", "name"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ group: groupSchema }, ["group"])),
      },
    },
    async (request) => {
      const { owner, name, members = [] } = request.body;
      if (!(await users.byUid(owner))) throw new AppError(ErrorCode.NOT_FOUND, `no user ${owner}`);
      const created = await chat.act(
        owner,
        { $case: "groupCreateReq", value: { name, memberUids: members } },
        "groupCreateResp",
        { requestId: request.id },
      );
      return { error: ErrorCode.OK, group: groupJson(created.group) };
    },
  );

  app.post<{ Params: { groupId: string }; Body: { uids: Uid[] } }>(
    "/admin/v1/groups/:groupId/members",
    {
      schema: {
        summary: "Add members directly (no invitation to accept)",
        tags: ["groups"],
        params: groupParams,
        body: {
          type: "object",
          properties: { uids: { type: "array", items: uidSchema, minItems: 1, maxItems: 10_000 } },
          required: ["uids"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ added: { type: "array", items: { type: "string" } } }, ["added"])),
      },
    },
    async (request) => {
      const { groupId } = request.params;
      const owner = await groupOwner(deps, groupId);
      const answer = await chat.act(
        owner,
        { $case: "groupInviteReq", value: { groupId, uids: request.body.uids } },
        "groupInviteResp",
        { requestId: request.id },
      );
      return { error: ErrorCode.OK, added: answer.added };
    },
  );

  app.delete<{ Params: { groupId: string; uid: Uid } }>(
    "/admin/v1/groups/:groupId/members/:uid",
    {
      schema: {
        summary: "Remove a member (not the owner: hand the group over first)",
        tags: ["groups"],
        params: memberParams,
        response: adminReplies(okSchema),
      },
    },
    async (request) => {
      const { groupId, uid } = request.params;
      const owner = await groupOwner(deps, groupId);
      if (uid === owner)
        throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "the owner is not removed: set another owner first");
      await chat.act(owner, { $case: "groupKickReq", value: { groupId, uid } }, "groupKickResp", {
        requestId: request.id,
      });
      return { error: ErrorCode.OK };
    },
  );

  app.put<{ Params: { groupId: string; uid: Uid }; Body: { role: keyof typeof ROLES } }>(
    "/admin/v1/groups/:groupId/members/:uid/role",
    {
      schema: {
        summary: 'Set a member\'s role; "owner" hands the group over (the old owner becomes an admin)',
        tags: ["groups"],
        params: memberParams,
        body: {
          type: "object",
          properties: { role: { type: "string", enum: Object.keys(ROLES) } },
          required: ["role"],
          additionalProperties: false,
        },
        response: adminReplies(okSchema),
      },
    },
    async (request) => {
      const { groupId, uid } = request.params;
      const owner = await groupOwner(deps, groupId);
      await chat.act(
        owner,
        { $case: "groupSetRoleReq", value: { groupId, uid, role: ROLES[request.body.role] } },
        "groupSetRoleResp",
        { requestId: request.id },
      );
      return { error: ErrorCode.OK };
    },
  );

  app.delete<{ Params: { groupId: string } }>(
    "/admin/v1/groups/:groupId",
    {
      schema: {
        summary: "Dissolve a group (its history is kept or removed as GROUP_DISSOLVE_HISTORY says)",
        tags: ["groups"],
        params: groupParams,
        response: adminReplies(okSchema),
      },
    },
    async (request) => {
      const { groupId } = request.params;
      const owner = await groupOwner(deps, groupId);
      await chat.act(owner, { $case: "groupDissolveReq", value: { groupId } }, "groupDissolveResp", {
        requestId: request.id,
      });
      return { error: ErrorCode.OK };
    },
  );
};
