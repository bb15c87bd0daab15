import { type GroupMember, GroupRole, MessageKind } from "@shardchat/sdk";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { PushState } from "./push.js";
import { type Conversation, type Session, snippetOf, untilText, type ViewMessage } from "./session.js";

type Panel = "chats" | "friends" | "groups" | "account";

/** The longest report reason the client offers to send (the server's REPORT_REASON_MAX_CHARS is larger). */
const REPORT_REASON_MAX = 500;

/**
 * A line icon drawn with the text colour (emoji fonts are not everywhere): one path, stroked.
 * Every icon of the client is one of these, differing only in its path and size.
 */
function StrokeIcon({ d, size, roundJoins = true }: { d: string; size: 14 | 16; roundJoins?: boolean }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" width={size} height={size} aria-hidden="true">
      <path
        d={d}
        fill="none"
        stroke="currentColor"
        stroke-width="2"
        stroke-linecap="round"
        stroke-linejoin={roundJoins ? "round" : undefined}
      />
    </svg>
  );
}

/** A paperclip (emoji fonts are not everywhere). */
function Clip() {
  return (
    <StrokeIcon
      size={16}
      roundJoins={false}
      d="M16.5 6.5 8.6 14.4a2 2 0 0 0 2.8 2.8l7.9-7.9a4 4 0 0 0-5.7-5.7L5.7 11.5a6 6 0 0 0 8.5 8.5l6.3-6.3"
    />
  );
}

/** A bin, for "delete for me" (emoji fonts are not everywhere). */
function Bin() {
  return <StrokeIcon size={14} d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6" />;
}

/** A pin, for pinned conversations. */
function Pin() {
  return <StrokeIcon size={14} d="M9 3h6l-1 6 4 4H6l4-4-1-6zM12 13v8" />;
}

/** A crossed-out bell, for muted conversations. */
function BellOff() {
  return <StrokeIcon size={14} d="M18 16H4l2-3V9a6 6 0 0 1 9.5-4.9M18 9v4l2 3M10 20a2 2 0 0 0 4 0M3 3l18 18" />;
}

/** A flag, for reports. */
function Flag() {
  return <StrokeIcon size={14} d="M5 21V4M5 4h11l-2 4 2 4H5" />;
}

/** A megaphone, for a group's announcement. */
function Megaphone() {
  return <StrokeIcon size={16} d="M3 10v4h3l8 5V5L6 10H3zM18 9a4 4 0 0 1 0 6" />;
}

/** A reason for a report (of a user or a message), sent or cancelled. */
function ReportForm({
  what,
  onSend,
  onCancel,
}: {
  what: string;
  onSend: (reason: string) => Promise<boolean>;
  onCancel: () => void;
}) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="menu report"
      aria-label={`Report ${what}`}
      onSubmit={async (e) => {
        e.preventDefault();
        const text = reason.trim();
        if (!text || busy) return;
        setBusy(true);
        const sent = await onSend(text);
        setBusy(false);
        if (sent) onCancel();
      }}
    >
      <small>Why are you reporting {what}? The operators read it; nobody else is told.</small>
      <input
        aria-label="Reason for the report"
        placeholder="Reason"
        required
        maxLength={REPORT_REASON_MAX}
        value={reason}
        onInput={(e) => setReason(e.currentTarget.value)}
      />
      <div class="row">
        <button type="submit" disabled={!reason.trim() || busy}>
          Send report
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/**
 * This user's settings of a conversation (pin, mute, hide, clear its history) and, for a 1:1
 * one, blocking and reporting the other user: from the chat header or the conversation list.
 */
function ConvOptions({
  session,
  conv,
  onClose,
  onHidden,
  onGroupSettings,
}: {
  session: Session;
  conv: Conversation;
  onClose: () => void;
  onHidden: () => void;
  onGroupSettings?: (groupId: string) => void;
}) {
  const [step, setStep] = useState<"menu" | "clear" | "report">("menu");
  const title = session.titleOf(conv);
  const peer = conv.peerUid;
  const safety = !session.unsupported.has("safety");
  const group = conv.group;
  if (step === "clear") {
    return (
      <fieldset class="menu options" aria-label={`Clear the history of ${title}`}>
        <small>Clear the history of this conversation for you? The others keep theirs.</small>
        <div class="row">
          <button
            type="button"
            class="danger"
            onClick={async () => {
              if (await session.clearHistory(conv.convId)) onClose();
            }}
          >
            Clear for me
          </button>
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
        </div>
      </fieldset>
    );
  }
  if (step === "report" && peer) {
    return <ReportForm what={title} onSend={(reason) => session.report({ uid: peer }, reason)} onCancel={onClose} />;
  }
  const set = (patch: { pinned?: boolean; muted?: boolean; hidden?: boolean }) => async () => {
    if (!(await session.setConversation(conv.convId, patch))) return;
    if (patch.hidden) onHidden();
    else onClose();
  };
  return (
    <fieldset class="menu options" aria-label={`Settings of ${title}`}>
      <button type="button" class="link" onClick={set({ pinned: !conv.pinned })}>
        {conv.pinned ? "Unpin conversation" : "Pin conversation"}
      </button>
      <button type="button" class="link" onClick={set({ muted: !conv.muted })}>
        {conv.muted ? "Unmute notifications" : "Mute notifications"}
      </button>
      <button type="button" class="link" onClick={set({ hidden: true })}>
        Hide conversation
      </button>
      <button type="button" class="link" onClick={() => setStep("clear")}>
        Clear history
      </button>
      {peer && safety && (
        <button
          type="button"
          class="link"
          onClick={async () => {
            const done = session.isBlocked(peer) ? await session.unblock(peer) : await session.block(peer);
            if (done) onClose();
          }}
        >
          {session.isBlocked(peer) ? "Unblock user" : "Block user"}
        </button>
      )}
      {peer && safety && (
        <button type="button" class="link" onClick={() => setStep("report")}>
          Report user
        </button>
      )}
      {group && !group.dissolved && onGroupSettings && (
        <button
          type="button"
          class="link"
          onClick={() => {
            onClose();
            onGroupSettings(group.groupId);
          }}
        >
          Group settings
        </button>
      )}
    </fieldset>
  );
}

function timeOf(ms: string): string {
  const d = new Date(Number(ms));
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeOf(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function preview(conv: Conversation): string {
  const m = conv.messages.filter((x) => !x.deletedForMe).at(-1);
  if (!m) return "no messages yet";
  if (m.recalled) return "message recalled";
  if (m.kind === MessageKind.FILE) return `file: ${m.file?.name ?? ""}`;
  if (m.kind === MessageKind.AUDIO) return "voice message";
  if (m.kind === MessageKind.CUSTOM) return `[${m.custom?.type ?? "custom"}]`;
  return m.text;
}

function ConnectionBadge({ session }: { session: Session }) {
  const s = session.state;
  const [, tick] = useState(0);
  useEffect(() => {
    if (s.kind !== "offline") return;
    const t = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, [s]);
  if (s.kind === "online") {
    return (
      <span class="conn online" data-testid="conn" data-state="online" title={`connected to ${s.nodeId}`}>
        ● online
      </span>
    );
  }
  if (s.kind === "offline") {
    const left = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
    return (
      <span class="conn offline" data-testid="conn" data-state="offline" role="status">
        <span title={s.reason}>● offline, retrying in {left}s</span>{" "}
        <button type="button" class="link" onClick={() => session.retryNow()}>
          retry now
        </button>
      </span>
    );
  }
  return (
    <span class="conn connecting" data-testid="conn" data-state={s.kind} role="status">
      ● connecting…
    </span>
  );
}

function Mark({ m, conv }: { m: ViewMessage; conv: Conversation }) {
  if (m.status === "sending")
    return (
      <span class="mark" title="sending" role="img" aria-label="sending" data-mark="sending">
        …
      </span>
    );
  if (m.status === "failed")
    return (
      <span class="mark failed" title="not sent" role="img" aria-label="not sent" data-mark="failed">
        !
      </span>
    );
  const read = !conv.group && conv.peerReadSeq >= m.seq;
  return (
    <span
      class={read ? "mark read" : "mark"}
      title={read ? "read" : "delivered to the server"}
      role="img"
      aria-label={read ? "read" : "sent"}
      data-mark={read ? "read" : "sent"}
    >
      {read ? "✓✓" : "✓"}
    </span>
  );
}

function FileBody({ m, session }: { m: ViewMessage; session: Session }) {
  const f = m.file;
  const [url, setUrl] = useState<string | undefined>(undefined);
  const [thumb, setThumb] = useState<string | undefined>(undefined);
  const media = f?.media;
  // Signed links, asked of gate once shown (and again when the file or session changes): the
  // thumbnail gate made of an image is what is shown; the original only opens on a click.
  useEffect(() => {
    if (!f) return;
    void session.fileUrl(f.id).then(setUrl);
    if (media?.thumbnail) void session.fileUrl(f.id, "thumbnail").then(setThumb);
  }, [f?.id, session]);
  if (!f) return null;
  const isImage = f.contentType.startsWith("image/");
  if (isImage && media?.thumbnail) {
    const { width, height } = media.thumbnail;
    return (
      <div class="file">
        <a href={url} target="_blank" rel="noreferrer" title={`${f.name} (${media.width}×${media.height})`}>
          {/* Sized from the reference before any byte arrives, so the list does not jump. */}
          <img
            src={thumb}
            alt={f.name}
            width={width}
            height={height}
            class="preview"
            data-testid="thumbnail"
            style={{ aspectRatio: `${width} / ${height}` }}
          />
        </a>
        <a href={url} download={f.name} class="download" data-testid="file-link">
          <Clip /> {f.name} <small>({sizeOf(Number(f.size))})</small>
        </a>
      </div>
    );
  }
  if (!url) {
    return (
      <div class="file">
        <span class="download">
          <Clip /> {f.name} <small>({sizeOf(Number(f.size))})</small>
        </span>
      </div>
    );
  }
  return (
    <div class="file">
      {isImage && (
        <a href={url} target="_blank" rel="noreferrer">
          <img src={url} alt={f.name} loading="lazy" class="preview" />
        </a>
      )}
      <a href={url} download={f.name} class="download" data-testid="file-link">
        <Clip /> {f.name} <small>({sizeOf(Number(f.size))})</small>
      </a>
    </div>
  );
}

/** A voice message: played inline from a signed link, its length shown before it loads. */
function VoiceBody({ m, session }: { m: ViewMessage; session: Session }) {
  const f = m.file;
  const [url, setUrl] = useState<string | undefined>(undefined);
  useEffect(() => {
    if (f) void session.fileUrl(f.id).then(setUrl);
  }, [f?.id, session]);
  if (!f) return null;
  return (
    <div class="voice" data-testid="voice">
      <span aria-hidden="true">🎤</span>
      {url ? (
        // biome-ignore lint/a11y/useMediaCaption: a voice message a user recorded has no caption track to offer
        <audio controls preload="none" src={url} data-testid="voice-player" />
      ) : null}
      <small>{clockOf(f.media?.durationMs ?? 0)}</small>
    </div>
  );
}

/** m:ss of a duration in ms. */
function clockOf(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

/**
 * Records a voice message with the browser's MediaRecorder: a click starts (the browser asks for
 * the microphone the first time), a second click stops and sends it.
 */
function VoiceRecorder({
  onRecorded,
  disabled,
}: {
  onRecorded: (clip: Blob, durationMs: number) => void;
  disabled: boolean;
}) {
  const [recording, setRecording] = useState<{ recorder: MediaRecorder; startedAt: number } | null>(null);
  const [, tick] = useState(0);
  useEffect(() => {
    if (!recording) return;
    const t = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(t);
  }, [recording]);
  if (typeof MediaRecorder === "undefined" || !navigator.mediaDevices) return null;
  const start = async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const recorder = new MediaRecorder(stream);
    const chunks: Blob[] = [];
    const startedAt = Date.now();
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      for (const track of stream.getTracks()) track.stop();
      const type = (recorder.mimeType || "audio/webm").split(";")[0] ?? "audio/webm";
      onRecorded(new Blob(chunks, { type }), Date.now() - startedAt);
    };
    recorder.start();
    setRecording({ recorder, startedAt });
  };
  return (
    <button
      type="button"
      class={recording ? "secondary attach recording" : "secondary attach"}
      aria-label={recording ? "Stop and send the voice message" : "Record a voice message"}
      title={recording ? "Stop and send" : "Record a voice message"}
      data-testid="voice-record"
      disabled={disabled}
      onClick={() => {
        if (recording) {
          recording.recorder.stop();
          setRecording(null);
        } else void start().catch(() => setRecording(null));
      }}
    >
      {recording ? `■ ${clockOf(Date.now() - recording.startedAt)}` : "🎤"}
    </button>
  );
}

/** The reactions offered on a message. */
const PALETTE = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
/** How long a touch holds a bubble before its actions show. */
const LONG_PRESS_MS = 500;

/** Someone to mention: a member, or everyone (uid "all", admins and the owner). */
interface Mentionable {
  uid: string;
  name: string;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether text mentions name as a token ("@name" followed by a space, punctuation or the end). */
function mentionsName(text: string, name: string): boolean {
  return new RegExp(`(^|\\s)@${escapeRegExp(name)}(?=$|[\\s.,!?;:)])`, "u").test(text);
}

/** Text with its @-tokens marked. */
function TextBody({ text }: { text: string }) {
  if (!text.includes("@")) return <div class="text">{text}</div>;
  const parts = text.split(/(@[^\s@.,!?;:)]+)/u);
  return (
    <div class="text">
      {parts.map((p, i) =>
        p.startsWith("@") && p.length > 1 ? (
          <span class="at" key={i}>
            {p}
          </span>
        ) : (
          p
        ),
      )}
    </div>
  );
}

/** A custom message: its type and its payload pretty-printed (shown as text, never run). */
function CustomCard({ m }: { m: ViewMessage }) {
  const custom = m.custom;
  if (!custom) return null;
  let pretty = custom.payloadJson;
  try {
    pretty = JSON.stringify(JSON.parse(custom.payloadJson), null, 2);
  } catch {
    // Shown as it came.
  }
  return (
    <div class="custom" data-testid="custom">
      <div class="custom-type">{custom.type}</div>
      <pre>{pretty}</pre>
    </div>
  );
}

type Menu = { seq: number; kind: "react" | "forward" | "report" } | null;

function Bubble({
  session,
  conv,
  m,
  menu,
  setMenu,
  pressed,
  setPressed,
  onReply,
  onEdit,
  onJump,
}: {
  session: Session;
  conv: Conversation;
  m: ViewMessage;
  menu: Menu;
  setMenu: (menu: Menu) => void;
  pressed: boolean;
  setPressed: (seq: number | null) => void;
  onReply: (m: ViewMessage) => void;
  onEdit: (m: ViewMessage) => void;
  onJump: (seq: number) => void;
}) {
  const mine = m.sender === session.uid;
  const stored = m.seq > 0;
  const live = stored && !m.recalled;
  const editable = mine && live && (m.kind === MessageKind.TEXT || m.kind === MessageKind.FILE);
  const recallable = live && (mine || session.runs(conv));
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const touching = useRef(false);
  const open = menu?.seq === m.seq && stored ? menu.kind : null;
  const act = (work: () => void) => () => {
    setPressed(null);
    work();
  };
  const endTouch = () => {
    clearTimeout(timer.current);
    setTimeout(() => {
      touching.current = false;
    }, 50);
  };
  const classes = ["msg"];
  if (mine) classes.push("mine");
  if (pressed) classes.push("show-actions");
  if (!mine && session.uid && m.mentions && (m.mentions.all || m.mentions.uids.includes(session.uid)))
    classes.push("mentions-me");
  const counts = (m.reactions?.counts ?? []).filter((c) => c.count > 0);
  return (
    <article
      class={classes.join(" ")}
      data-seq={m.seq}
      data-testid="message"
      aria-label={`Message from ${session.nameOf(m.sender)}`}
      tabIndex={stored ? 0 : undefined}
      onTouchStart={() => {
        touching.current = true;
        clearTimeout(timer.current);
        if (stored) timer.current = setTimeout(() => setPressed(m.seq), LONG_PRESS_MS);
      }}
      onTouchEnd={endTouch}
      onTouchMove={endTouch}
      onTouchCancel={endTouch}
      onContextMenu={(e) => {
        // A long press on a touch screen: the actions, not the browser's menu.
        if (!touching.current || !stored) return;
        e.preventDefault();
        setPressed(m.seq);
      }}
    >
      {stored && (
        <div class="actions" role="toolbar" aria-label="Message actions">
          {live && (
            <button type="button" class="act" title="Reply" aria-label="Reply" onClick={act(() => onReply(m))}>
              ↩
            </button>
          )}
          {live && (
            <button
              type="button"
              class="act"
              title="React"
              aria-label="React"
              aria-expanded={open === "react"}
              onClick={act(() => setMenu(open === "react" ? null : { seq: m.seq, kind: "react" }))}
            >
              ☺
            </button>
          )}
          {editable && (
            <button type="button" class="act" title="Edit" aria-label="Edit" onClick={act(() => onEdit(m))}>
              ✎
            </button>
          )}
          {live && (
            <button
              type="button"
              class="act"
              title="Forward"
              aria-label="Forward"
              aria-expanded={open === "forward"}
              onClick={act(() => setMenu(open === "forward" ? null : { seq: m.seq, kind: "forward" }))}
            >
              ↪
            </button>
          )}
          {recallable && (
            <button
              type="button"
              class="act"
              title="Recall for everyone"
              aria-label="Recall"
              onClick={act(() => void session.recall(m))}
            >
              ⟲
            </button>
          )}
          {live && !mine && !session.unsupported.has("safety") && (
            <button
              type="button"
              class="act"
              title="Report this message"
              aria-label="Report"
              aria-expanded={open === "report"}
              onClick={act(() => setMenu(open === "report" ? null : { seq: m.seq, kind: "report" }))}
            >
              <Flag />
            </button>
          )}
          <button
            type="button"
            class="act"
            title="Delete for me"
            aria-label="Delete for me"
            onClick={act(() => void session.deleteForMe(m))}
          >
            <Bin />
          </button>
        </div>
      )}
      {!mine && conv.group && <div class="who">{session.nameOf(m.sender)}</div>}
      {m.forwarded && (
        <div class="forwarded" data-testid="forwarded">
          Forwarded
          {m.forwarded.sender !== m.sender ? ` from ${session.nameOf(m.forwarded.sender)}` : ""}
        </div>
      )}
      {m.reply && (
        <button
          type="button"
          class="quote"
          data-testid="quote"
          title="Show the quoted message"
          onClick={() => onJump(m.reply?.seq ?? 0)}
        >
          <span class="quote-who">{session.nameOf(m.reply.sender)}</span>
          <span class="quote-snippet">{m.reply.recalled ? "recalled message" : m.reply.snippet || "…"}</span>
        </button>
      )}
      {m.recalled ? (
        <div class="recalled" data-testid="recalled">
          message recalled
        </div>
      ) : (
        <>
          {m.kind === MessageKind.FILE ? <FileBody m={m} session={session} /> : null}
          {m.kind === MessageKind.AUDIO ? <VoiceBody m={m} session={session} /> : null}
          {m.kind === MessageKind.CUSTOM ? <CustomCard m={m} /> : null}
          {m.text && <TextBody text={m.text} />}
        </>
      )}
      {open === "react" && (
        <div class="menu palette">
          {PALETTE.map((emoji) => {
            const had = counts.some((c) => c.emoji === emoji && c.me);
            return (
              <button
                type="button"
                class={had ? "act me" : "act"}
                key={emoji}
                title={had ? `Remove ${emoji}` : `React with ${emoji}`}
                aria-label={`React with ${emoji}`}
                aria-pressed={had}
                onClick={() => {
                  setMenu(null);
                  void session.react(m, emoji, !had);
                }}
              >
                {emoji}
              </button>
            );
          })}
        </div>
      )}
      {open === "forward" && (
        <div class="menu">
          <small>Forward to:</small>
          <ul>
            {[...session.conversations.values()]
              .filter((c) => c.group || c.peerUid)
              .sort((a, b) => b.lastActivity - a.lastActivity)
              .map((c) => (
                <li key={c.convId}>
                  <button
                    type="button"
                    class="link"
                    aria-label={`Forward to ${session.titleOf(c)}`}
                    onClick={async () => {
                      setMenu(null);
                      if (await session.forward(m, c.convId)) session.notice = `forwarded to ${session.titleOf(c)}`;
                    }}
                  >
                    {c.group ? <small class="tag">group</small> : null}
                    {session.titleOf(c)}
                  </button>
                </li>
              ))}
          </ul>
          <button type="button" class="link" onClick={() => setMenu(null)}>
            cancel
          </button>
        </div>
      )}
      {open === "report" && (
        <ReportForm
          what={`this message from ${session.nameOf(m.sender)}`}
          onSend={(reason) => session.report({ convId: m.convId, seq: m.seq }, reason)}
          onCancel={() => setMenu(null)}
        />
      )}
      {counts.length > 0 && !m.recalled && (
        <div class="reactions">
          {counts.map((c) => (
            <button
              type="button"
              key={c.emoji}
              class={c.me ? "chip me" : "chip"}
              data-testid="reaction"
              data-emoji={c.emoji}
              data-count={c.count}
              aria-pressed={c.me}
              aria-label={`${c.emoji} ${c.count}`}
              title={c.me ? `Remove your ${c.emoji}` : `React with ${c.emoji}`}
              onClick={() => void session.react(m, c.emoji, !c.me)}
            >
              {c.emoji} {c.count}
            </button>
          ))}
        </div>
      )}
      <div class="meta">
        {m.editCount ? (
          <span class="edited" data-testid="edited" title={m.editedAtMs ? `edited ${timeOf(m.editedAtMs)}` : "edited"}>
            {m.editCount > 1 ? `edited ×${m.editCount}` : "edited"}{" "}
          </span>
        ) : null}
        {timeOf(m.sentAtMs)} {mine && <Mark m={m} conv={conv} />}
      </div>
    </article>
  );
}

function ChatView({
  session,
  conv,
  onBack,
  onGroupSettings,
}: {
  session: Session;
  conv: Conversation;
  onBack: () => void;
  onGroupSettings: (groupId: string) => void;
}) {
  const [text, setText] = useState("");
  const [headMenu, setHeadMenu] = useState(false);
  const [, tick] = useState(0);
  const [replyTo, setReplyTo] = useState<ViewMessage | null>(null);
  const [editing, setEditing] = useState<ViewMessage | null>(null);
  const [menu, setMenu] = useState<Menu>(null);
  const [pressed, setPressed] = useState<number | null>(null);
  /** The "@word" being typed: where it starts and ends in the text. */
  const [suggest, setSuggest] = useState<{ start: number; end: number; query: string } | null>(null);
  const [suggestAt, setSuggestAt] = useState(0);
  const [picked, setPicked] = useState<Mentionable[]>([]);
  const list = useRef<HTMLDivElement>(null);
  const file = useRef<HTMLInputElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const stick = useRef(true);
  const lastCount = useRef(0);
  const loading = useRef(false);
  const groupId = conv.group?.groupId;

  useEffect(() => {
    stick.current = true;
    setHeadMenu(false);
    setReplyTo(null);
    setEditing(null);
    setMenu(null);
    setPressed(null);
    setSuggest(null);
    setPicked([]);
    if (conv.messages.filter((m) => m.seq > 0).length < 20) void session.loadOlder(conv.convId);
    input.current?.focus();
  }, [conv.convId]);

  // The members of a group, for @-completion and for the admin's actions.
  useEffect(() => {
    if (groupId) void session.loadMembers(groupId);
  }, [groupId, session.state.kind === "online"]);

  useEffect(() => {
    if (document.visibilityState === "visible") void session.markRead(conv.convId);
  });

  // A timed mute ends by itself: the composer opens again then.
  const mutedUntil = session.mutedUntil(conv);
  useEffect(() => {
    if (!mutedUntil) return;
    const t = setTimeout(() => tick((n) => n + 1), Math.min(mutedUntil - Date.now() + 100, 2 ** 31 - 1));
    return () => clearTimeout(t);
  }, [mutedUntil]);

  // Keeps the newest message in view unless the user scrolled up to read older ones; after an
  // older page is prepended, keeps the same message under the reader's eyes.
  const prevHeight = useRef(0);
  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    if (stick.current) el.scrollTop = el.scrollHeight;
    else if (conv.messages.length !== lastCount.current && el.scrollTop < 50) {
      el.scrollTop = el.scrollHeight - prevHeight.current + el.scrollTop;
    }
    prevHeight.current = el.scrollHeight;
    lastCount.current = conv.messages.length;
  });

  const onScroll = async () => {
    const el = list.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 40 && !conv.complete && !loading.current) {
      loading.current = true;
      prevHeight.current = el.scrollHeight;
      await session.loadOlder(conv.convId);
      loading.current = false;
    }
  };

  const members: Mentionable[] = groupId
    ? (session.groupMembers.get(groupId) ?? [])
        .filter((m) => m.uid !== session.uid)
        .map((m) => ({ uid: m.uid, name: session.nameOf(m.uid) }))
    : [];
  if (groupId && session.runs(conv)) members.push({ uid: "all", name: "everyone" });
  const options = suggest
    ? members.filter((c) => c.name.toLowerCase().startsWith(suggest.query.toLowerCase())).slice(0, 8)
    : [];

  const findSuggest = (value: string, caret: number) => {
    const match = groupId ? /(^|\s)@([^\s@]*)$/u.exec(value.slice(0, caret)) : null;
    const query = match?.[2];
    setSuggest(query === undefined ? null : { start: caret - query.length - 1, end: caret, query });
    setSuggestAt(0);
  };

  const pick = (c: Mentionable) => {
    if (!suggest) return;
    const insert = `@${c.name} `;
    const next = text.slice(0, suggest.start) + insert + text.slice(suggest.end);
    const caret = suggest.start + insert.length;
    setText(next);
    setPicked([...picked.filter((p) => p.uid !== c.uid), c]);
    setSuggest(null);
    requestAnimationFrame(() => {
      input.current?.focus();
      input.current?.setSelectionRange(caret, caret);
    });
  };

  /** Who the text mentions: the members picked or typed as "@name", and @everyone (admins). */
  const mentionsIn = (body: string) => {
    const uids = new Set<string>();
    let all = false;
    for (const c of [...members, ...picked]) {
      if (!mentionsName(body, c.name)) continue;
      if (c.uid === "all") all = true;
      else uids.add(c.uid);
    }
    return { uids: [...uids], all };
  };

  const cancel = () => {
    if (editing) setText("");
    setEditing(null);
    setReplyTo(null);
  };

  const send = async () => {
    const body = text.trim();
    if (!body || session.postingBlock(conv)) return;
    if (editing) {
      if (await session.edit(editing, body)) {
        setEditing(null);
        setText("");
      }
      return;
    }
    setText("");
    setSuggest(null);
    stick.current = true;
    const reply = replyTo ?? undefined;
    setReplyTo(null);
    const mentions = groupId ? mentionsIn(body) : undefined;
    setPicked([]);
    void session.sendText(conv.convId, body, { reply, mentions });
  };

  const typers = session.typingIn(conv.convId).map((uid) => session.nameOf(uid));
  const uploads = session.uploads.filter((u) => u.convId === conv.convId);
  const group = conv.group;
  const peer = conv.peerUid;
  const peerBlocked = !!peer && session.isBlocked(peer);
  /** Why this user may not post here now: a muted member's composer is disabled, a dissolved group has none. */
  const refused = session.postingBlock(conv);
  const noComposer =
    peerBlocked || !!group?.dissolved || (!group && conv.convId.startsWith("g:") && session.groupsLoaded);
  const announcement = group?.announcement?.text ? group.announcement : undefined;
  return (
    <section class="chat" aria-label={`Conversation with ${session.titleOf(conv)}`}>
      <header class="chat-head">
        <button type="button" class="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <h2 data-testid="chat-title">{session.titleOf(conv)}</h2>
        {conv.pinned && (
          <span class="mark-icon" role="img" aria-label="Pinned" title="Pinned">
            <Pin />
          </span>
        )}
        {conv.muted && (
          <span class="mark-icon" role="img" aria-label="Muted" title="Muted: no notifications">
            <BellOff />
          </span>
        )}
        {group && !group.dissolved && <small>{group.memberCount} members</small>}
        <button
          type="button"
          class="act options-toggle"
          aria-label="Conversation options"
          title="Conversation options"
          aria-expanded={headMenu}
          onClick={() => setHeadMenu(!headMenu)}
        >
          ⋯
        </button>
      </header>
      {headMenu && (
        <div class="head-menu">
          <ConvOptions
            session={session}
            conv={conv}
            onClose={() => setHeadMenu(false)}
            onHidden={() => {
              setHeadMenu(false);
              onBack();
            }}
            onGroupSettings={onGroupSettings}
          />
        </div>
      )}
      {announcement && !group?.dissolved && (
        <div class="announcement" data-testid="announcement" role="note" aria-label="Group announcement">
          <Megaphone />
          <span class="grow">{announcement.text}</span>
          <small>{session.nameOf(announcement.by)}</small>
        </div>
      )}
      <div class="messages" ref={list} onScroll={onScroll} data-testid="messages" role="log">
        {conv.complete ? (
          <p class="start">{conv.firstSeq > 1 ? "earlier messages were cleared" : "start of the conversation"}</p>
        ) : (
          <p class="start">scroll up for older messages</p>
        )}
        {conv.messages
          .filter((m) => !m.deletedForMe)
          .map((m) => (
            <Bubble
              key={m.seq > 0 ? `s${m.seq}` : `c${m.clientMsgId}`}
              session={session}
              conv={conv}
              m={m}
              menu={menu}
              setMenu={setMenu}
              pressed={pressed === m.seq}
              setPressed={setPressed}
              onReply={(target) => {
                setEditing(null);
                setReplyTo(target);
                input.current?.focus();
              }}
              onEdit={(target) => {
                setReplyTo(null);
                setEditing(target);
                setText(target.text);
                input.current?.focus();
              }}
              onJump={(seq) => {
                stick.current = false;
                list.current?.querySelector(`[data-seq="${seq}"]`)?.scrollIntoView({ block: "center" });
              }}
            />
          ))}
      </div>
      <div class="typing" data-testid="typing" aria-live="polite">
        {typers.length === 0
          ? ""
          : typers.length === 1
            ? `${typers[0]} is typing…`
            : `${typers.slice(0, -1).join(", ")} and ${typers.at(-1)} are typing…`}
      </div>
      {uploads.map((u) => (
        <div class="upload" key={u.name}>
          uploading {u.name} <progress max={u.total || 1} value={u.sent} data-testid="upload-progress" />
        </div>
      ))}
      {replyTo && (
        <div class="replying" data-testid="replying">
          <span class="grow">
            Replying to <b>{session.nameOf(replyTo.sender)}</b>:{" "}
            <span class="quote-snippet">{snippetOf(replyTo) || "…"}</span>
          </span>
          <button type="button" class="link" aria-label="Cancel reply" title="Cancel reply" onClick={cancel}>
            ✕
          </button>
        </div>
      )}
      {editing && (
        <div class="replying" data-testid="editing">
          <span class="grow">Editing your message</span>
          <button type="button" class="link" aria-label="Cancel edit" title="Cancel edit" onClick={cancel}>
            ✕
          </button>
        </div>
      )}
      {conv.notice && (
        <p class="chat-notice" role="alert" data-testid="chat-notice">
          {conv.notice}
        </p>
      )}
      {peerBlocked && peer && (
        <div class="composer-off" data-testid="blocked-bar">
          <span class="grow">You blocked {session.nameOf(peer)}: neither of you can message the other.</span>
          <button type="button" class="secondary" onClick={() => void session.unblock(peer)}>
            Unblock
          </button>
        </div>
      )}
      {refused && (
        <p class="composer-off" role="status" data-testid="composer-off">
          {refused}
        </p>
      )}
      {options.length > 0 && !noComposer && (
        <ul class="suggest" aria-label="Mention someone">
          {options.map((c, i) => (
            <li key={c.uid}>
              <button
                type="button"
                class={i === suggestAt ? "link active" : "link"}
                title={c.uid === "all" ? "Mention everyone in the group" : `Mention ${c.name}`}
                onMouseDown={(e) => {
                  // The composer keeps the focus (and its caret).
                  e.preventDefault();
                  pick(c);
                }}
                onClick={() => pick(c)}
              >
                @{c.name}
              </button>
            </li>
          ))}
        </ul>
      )}
      {!noComposer && (
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <button
            type="button"
            class="secondary attach"
            onClick={() => file.current?.click()}
            aria-label="Attach a file"
            title="Attach a file"
            disabled={!!refused}
          >
            <Clip />
          </button>
          <VoiceRecorder
            disabled={!!refused}
            onRecorded={(clip, durationMs) => void session.sendVoice(conv.convId, clip, durationMs)}
          />
          <input
            type="file"
            ref={file}
            hidden
            data-testid="file-input"
            onChange={(e) => {
              const f = e.currentTarget.files?.[0];
              if (f) void session.sendFile(conv.convId, f);
              e.currentTarget.value = "";
            }}
          />
          <textarea
            ref={input}
            rows={1}
            disabled={!!refused}
            placeholder={editing ? "Edit the message" : "Message"}
            title="Enter sends, Shift+Enter starts a new line"
            aria-label="Message"
            value={text}
            onInput={(e) => {
              const value = e.currentTarget.value;
              setText(value);
              findSuggest(value, e.currentTarget.selectionStart ?? value.length);
              if (value.trim() && !editing) session.notifyTyping(conv.convId);
            }}
            onKeyDown={(e) => {
              if (options.length > 0) {
                if (e.key === "ArrowDown" || e.key === "ArrowUp") {
                  e.preventDefault();
                  const step = e.key === "ArrowDown" ? 1 : options.length - 1;
                  setSuggestAt((suggestAt + step) % options.length);
                  return;
                }
                if ((e.key === "Enter" || e.key === "Tab") && !e.isComposing) {
                  e.preventDefault();
                  const chosen = options[suggestAt] ?? options[0];
                  if (chosen) pick(chosen);
                  return;
                }
                if (e.key === "Escape") {
                  e.preventDefault();
                  setSuggest(null);
                  return;
                }
              }
              if (e.key === "Escape" && (replyTo || editing)) {
                e.preventDefault();
                cancel();
                return;
              }
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
          <button type="submit" disabled={!text.trim() || !!refused}>
            {editing ? "Save" : "Send"}
          </button>
        </form>
      )}
    </section>
  );
}

function ConversationList({
  session,
  open,
  onOpen,
  onHidden,
  onGroupSettings,
}: {
  session: Session;
  open: string | null;
  onOpen: (id: string) => void;
  onHidden: (id: string) => void;
  onGroupSettings: (groupId: string) => void;
}) {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<{ uid: string; name: string }[]>([]);
  const [menuFor, setMenuFor] = useState<string | null>(null);
  // Pinned first, then the most recently active; hidden ones wait for their next message.
  const convs = session.listed();
  return (
    <div class="list">
      <form
        class="row"
        onSubmit={async (e) => {
          e.preventDefault();
          const q = query.trim();
          if (!q) return;
          if (session.unsupported.has("friends")) {
            if (/^\d+$/.test(q)) onOpen(session.openDirect(q));
            return;
          }
          setFound((await session.search(q)).filter((u) => u.uid !== session.uid));
        }}
      >
        <input
          class="grow"
          aria-label="Find a user by name, email or uid"
          placeholder="New chat: find a user"
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        <button type="submit" class="secondary">
          Find
        </button>
      </form>
      {found.length > 0 && (
        <ul class="found">
          {found.map((u) => (
            <li key={u.uid}>
              <button
                type="button"
                class="link"
                onClick={() => {
                  setFound([]);
                  setQuery("");
                  onOpen(session.openDirect(u.uid, u.name));
                }}
              >
                {u.name} <small>#{u.uid}</small>
              </button>
            </li>
          ))}
        </ul>
      )}
      <ul class="convs" aria-label="Conversations">
        {convs.length === 0 && <li class="empty">No conversations yet: find someone above.</li>}
        {convs.map((c) => {
          const title = session.titleOf(c);
          return (
            <li key={c.convId} data-testid="conv-item" data-pinned={c.pinned} data-muted={c.muted}>
              <div class="conv-row">
                <button
                  type="button"
                  class={c.convId === open ? "conv active" : "conv"}
                  onClick={() => onOpen(c.convId)}
                  data-testid="conv"
                  data-conv={c.convId}
                >
                  <span class="title">
                    {c.group ? <small class="tag">group</small> : null}
                    {title}
                  </span>
                  <span class="badges">
                    {c.pinned && (
                      <span class="mark-icon" data-testid="pinned" role="img" aria-label="Pinned" title="Pinned">
                        <Pin />
                      </span>
                    )}
                    {c.muted && (
                      <span
                        class="mark-icon"
                        data-testid="muted"
                        role="img"
                        aria-label="Muted"
                        title="Muted: no notifications"
                      >
                        <BellOff />
                      </span>
                    )}
                    {c.mentioned && (
                      <span
                        class="badge at"
                        data-testid="mentioned"
                        role="img"
                        aria-label="You were mentioned"
                        title="You were mentioned"
                      >
                        @
                      </span>
                    )}
                    {c.unread > 0 && (
                      <span class={c.muted ? "badge quiet" : "badge"} data-testid="unread" title={`${c.unread} unread`}>
                        {c.unread}
                      </span>
                    )}
                  </span>
                  <span class="last">{preview(c)}</span>
                </button>
                <button
                  type="button"
                  class="act options-toggle"
                  aria-label={`Options for ${title}`}
                  title="Pin, mute, hide, clear…"
                  aria-expanded={menuFor === c.convId}
                  onClick={() => setMenuFor(menuFor === c.convId ? null : c.convId)}
                >
                  ⋯
                </button>
              </div>
              {menuFor === c.convId && (
                <ConvOptions
                  session={session}
                  conv={c}
                  onClose={() => setMenuFor(null)}
                  onHidden={() => {
                    setMenuFor(null);
                    onHidden(c.convId);
                  }}
                  onGroupSettings={onGroupSettings}
                />
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function FriendsPanel({ session, onOpen }: { session: Session; onOpen: (id: string) => void }) {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<{ uid: string; name: string }[]>([]);
  const [note, setNote] = useState("");
  useEffect(() => {
    void session.loadFriends();
    void session.loadBlocked();
  }, []);
  const safety = !session.unsupported.has("safety");
  return (
    <div class="list">
      <form
        class="row"
        onSubmit={async (e) => {
          e.preventDefault();
          if (query.trim()) setFound((await session.search(query.trim())).filter((u) => u.uid !== session.uid));
        }}
      >
        <input
          class="grow"
          aria-label="Search users"
          placeholder="Search users: name, email or uid"
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        <button type="submit" class="secondary">
          Search
        </button>
      </form>
      {found.length > 0 && (
        <div class="card">
          <input
            aria-label="Message with the request"
            placeholder="Say hello (optional)"
            value={note}
            onInput={(e) => setNote(e.currentTarget.value)}
          />
          <ul class="found">
            {found.map((u) => (
              <li key={u.uid} class="row">
                <span class="grow">
                  {u.name} <small>#{u.uid}</small>
                </span>
                <button
                  type="button"
                  class="secondary"
                  onClick={async () => {
                    if (await session.act((c) => c.applyFriend(u.uid, note))) {
                      session.notice = `friend request sent to ${u.name}`;
                      setFound([]);
                      setNote("");
                    }
                  }}
                >
                  Add friend
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      {session.applications.length > 0 && <h3>Requests</h3>}
      <ul class="found" aria-label="Friend requests">
        {session.applications.map((a) => (
          <li key={a.from?.uid} class="card" data-testid="application">
            <div>
              <b>{a.from?.name}</b> wants to be friends{a.message ? `: “${a.message}”` : ""}
            </div>
            <div class="row">
              <button
                type="button"
                onClick={async () => {
                  if (await session.act((c) => c.replyFriend(a.from?.uid ?? "", true))) await session.loadFriends();
                }}
              >
                Accept
              </button>
              <button
                type="button"
                class="secondary"
                onClick={async () => {
                  if (await session.act((c) => c.replyFriend(a.from?.uid ?? "", false))) await session.loadFriends();
                }}
              >
                Decline
              </button>
            </div>
          </li>
        ))}
      </ul>
      <h3>Friends</h3>
      <ul class="found" aria-label="Friends">
        {session.friends.length === 0 && <li class="empty">No friends yet.</li>}
        {session.friends.map((f) => (
          <li key={f.user?.uid} class="row" data-testid="friend">
            <span
              class={f.online ? "presence on" : "presence"}
              role="img"
              aria-label={f.online ? "online" : "offline"}
            />
            <span class="grow">{f.user?.name}</span>
            <button
              type="button"
              class="secondary"
              onClick={() => onOpen(session.openDirect(f.user?.uid ?? "", f.user?.name))}
            >
              Chat
            </button>
            <button
              type="button"
              class="link"
              onClick={async () => {
                if (await session.act((c) => c.removeFriend(f.user?.uid ?? ""))) await session.loadFriends();
              }}
            >
              remove
            </button>
            {safety && (
              <button
                type="button"
                class="link"
                aria-label={`Block ${f.user?.name}`}
                title="Block: neither of you can message the other; the friendship ends"
                onClick={() => void session.block(f.user?.uid ?? "")}
              >
                block
              </button>
            )}
          </li>
        ))}
      </ul>
      {safety && (
        <>
          <h3>Blocked users</h3>
          <ul class="found" aria-label="Blocked users">
            {session.blocked.length === 0 && <li class="empty">Nobody is blocked.</li>}
            {session.blocked.map((b) => {
              const name = b.user?.name || `user ${b.user?.uid}`;
              return (
                <li key={b.user?.uid} class="row" data-testid="blocked-user">
                  <span class="grow">
                    {name} <small>since {new Date(Number(b.sinceMs)).toLocaleDateString()}</small>
                  </span>
                  <button
                    type="button"
                    class="secondary"
                    aria-label={`Unblock ${name}`}
                    onClick={() => void session.unblock(b.user?.uid ?? "")}
                  >
                    Unblock
                  </button>
                </li>
              );
            })}
          </ul>
        </>
      )}
    </div>
  );
}

/** The mute durations offered to admins ("forever": until unmuted). */
const MUTE_CHOICES: { label: string; seconds: number | "forever" }[] = [
  { label: "10 minutes", seconds: 600 },
  { label: "1 hour", seconds: 3600 },
  { label: "1 day", seconds: 86_400 },
  { label: "1 week", seconds: 604_800 },
  { label: "until unmuted", seconds: "forever" },
];

function rank(role: GroupRole | undefined): number {
  return role === GroupRole.OWNER ? 2 : role === GroupRole.ADMIN ? 1 : 0;
}

function roleName(role: GroupRole): string {
  return role === GroupRole.OWNER ? "owner" : role === GroupRole.ADMIN ? "admin" : "";
}

/** How long a group keeps its messages, in words. */
function ttlText(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  return `${seconds} seconds`;
}

/** A timed or open-ended mute of one member: a duration, then "mute". */
function MuteControl({ session, groupId, member }: { session: Session; groupId: string; member: GroupMember }) {
  const [choice, setChoice] = useState(1);
  const name = session.nameOf(member.uid);
  return (
    <span class="row mute">
      <select
        aria-label={`Mute ${name} for`}
        value={String(choice)}
        onChange={(e) => setChoice(Number(e.currentTarget.value))}
      >
        {MUTE_CHOICES.map((c, i) => (
          <option value={String(i)} key={c.label}>
            {c.label}
          </option>
        ))}
      </select>
      <button
        type="button"
        class="link"
        aria-label={`Mute ${name}`}
        onClick={() => void session.muteMember(groupId, member.uid, MUTE_CHOICES[choice]?.seconds ?? 3600)}
      >
        mute
      </button>
    </span>
  );
}

/** A group's members with roles and mutes, and what its admins and owner may change. */
function GroupDetails({ session, groupId, onClose }: { session: Session; groupId: string; onClose: () => void }) {
  const group = session.groups.find((g) => g.groupId === groupId);
  const members = session.groupMembers.get(groupId) ?? [];
  const [invitee, setInvitee] = useState("");
  const [draft, setDraft] = useState(group?.announcement?.text ?? "");
  const [confirmDissolve, setConfirmDissolve] = useState(false);
  const myRole = group?.owner === session.uid ? GroupRole.OWNER : members.find((m) => m.uid === session.uid)?.role;
  const moderator = rank(myRole) >= 1;
  useEffect(() => {
    setDraft(group?.announcement?.text ?? "");
    setConfirmDissolve(false);
    void session.members(groupId);
  }, [groupId]);
  // The open join requests, once this user is known to run the group.
  useEffect(() => {
    if (moderator && group?.joinApproval) void session.loadJoinRequests(groupId);
  }, [groupId, moderator, group?.joinApproval]);
  if (!group) return null;
  const candidates = session.friends.filter((f) => !members.some((m) => m.uid === f.user?.uid));
  const requests = session.joinRequests.get(groupId) ?? [];
  const now = Date.now();
  return (
    <section class="card" aria-label={`Members of ${group.name}`}>
      <h3>{group.name}</h3>
      <small>
        Group id <span data-testid="group-id">{group.groupId}</span>
        {group.messageTtlSeconds ? ` · messages are deleted after ${ttlText(group.messageTtlSeconds)}` : ""}
      </small>
      <ul class="found">
        {members.map((m) => {
          const name = session.nameOf(m.uid);
          const until = Number(m.mutedUntilMs ?? 0);
          const muted = until > now;
          const canModerate = moderator && m.uid !== session.uid && rank(m.role) < rank(myRole);
          return (
            <li key={m.uid} data-testid="member" class="row member">
              <span class="grow">
                {name} <small>{roleName(m.role)}</small>
                {muted && (
                  <small class="muted-mark" data-testid="member-muted">
                    {" "}
                    · muted {untilText(until)}
                  </small>
                )}
              </span>
              <span class="member-actions">
                {canModerate &&
                  (muted ? (
                    <button
                      type="button"
                      class="link"
                      aria-label={`Unmute ${name}`}
                      onClick={() => void session.muteMember(group.groupId, m.uid, 0)}
                    >
                      unmute
                    </button>
                  ) : (
                    <MuteControl session={session} groupId={group.groupId} member={m} />
                  ))}
                {group.owner === session.uid && m.uid !== session.uid && (
                  <button
                    type="button"
                    class="link"
                    aria-label={`Make ${name} the owner`}
                    onClick={async () => {
                      if (await session.act((c) => c.transferGroup(group.groupId, m.uid))) {
                        await session.loadGroups();
                        await session.members(group.groupId);
                      }
                    }}
                  >
                    make owner
                  </button>
                )}
              </span>
            </li>
          );
        })}
      </ul>
      {moderator && requests.length > 0 && (
        <>
          <h4>Join requests</h4>
          <ul class="found" aria-label="Join requests">
            {requests.map((r) => {
              const uid = r.user?.uid ?? "";
              const name = r.user?.name || session.nameOf(uid);
              return (
                <li key={uid} class="row" data-testid="join-request">
                  <span class="grow">
                    <b>{name}</b>
                    {r.message ? `: “${r.message}”` : " asks to join"}
                  </span>
                  <button
                    type="button"
                    aria-label={`Approve ${name}`}
                    onClick={() => void session.answerJoin(group.groupId, uid, true)}
                  >
                    Approve
                  </button>
                  <button
                    type="button"
                    class="secondary"
                    aria-label={`Decline ${name}`}
                    onClick={() => void session.answerJoin(group.groupId, uid, false)}
                  >
                    Decline
                  </button>
                </li>
              );
            })}
          </ul>
        </>
      )}
      {moderator && (
        <fieldset class="moderation">
          <legend>Moderation</legend>
          <label class="check">
            <input
              type="checkbox"
              checked={group.mutedAll === true}
              onChange={(e) => void session.muteAll(group.groupId, e.currentTarget.checked)}
            />
            Mute everyone (only admins can post)
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={group.joinApproval === true}
              onChange={(e) => void session.setJoinApproval(group.groupId, e.currentTarget.checked)}
            />
            Require approval to join
          </label>
          <label>
            Announcement
            <textarea
              rows={2}
              placeholder="Shown at the top of the group"
              value={draft}
              onInput={(e) => setDraft(e.currentTarget.value)}
            />
          </label>
          <div class="row">
            <button
              type="button"
              class="secondary"
              disabled={!draft.trim() || draft.trim() === group.announcement?.text}
              onClick={() => void session.announce(group.groupId, draft.trim())}
            >
              Set announcement
            </button>
            {group.announcement?.text && (
              <button
                type="button"
                class="link"
                onClick={async () => {
                  if (await session.announce(group.groupId, "")) setDraft("");
                }}
              >
                Remove announcement
              </button>
            )}
          </div>
        </fieldset>
      )}
      <div class="row">
        {candidates.length > 0 && (
          <>
            <select aria-label="Friend to invite" value={invitee} onChange={(e) => setInvitee(e.currentTarget.value)}>
              {candidates.map((f) => (
                <option value={f.user?.uid} key={f.user?.uid}>
                  {f.user?.name}
                </option>
              ))}
            </select>
            <button
              type="button"
              class="secondary"
              onClick={async () => {
                const uid = invitee || candidates[0]?.user?.uid;
                if (uid && (await session.act((c) => c.inviteToGroup(group.groupId, [uid])))) {
                  await session.members(group.groupId);
                }
              }}
            >
              Invite
            </button>
          </>
        )}
        <button
          type="button"
          class="link"
          onClick={async () => {
            if (await session.act((c) => c.leaveGroup(group.groupId))) {
              onClose();
              await session.loadGroups();
            }
          }}
        >
          Leave group
        </button>
      </div>
      {group.owner === session.uid &&
        (confirmDissolve ? (
          <fieldset class="confirm" aria-label={`Dissolve ${group.name}`}>
            <small>Dissolve {group.name} for everyone? Nobody can post in it again; this cannot be undone.</small>
            <div class="row">
              <button
                type="button"
                class="danger"
                onClick={async () => {
                  if (await session.dissolve(group.groupId)) onClose();
                }}
              >
                Dissolve for good
              </button>
              <button type="button" class="secondary" onClick={() => setConfirmDissolve(false)}>
                Cancel
              </button>
            </div>
          </fieldset>
        ) : (
          <button type="button" class="link danger-link" onClick={() => setConfirmDissolve(true)}>
            Dissolve group
          </button>
        ))}
    </section>
  );
}

function GroupsPanel({
  session,
  onOpen,
  selected,
  onSelect,
}: {
  session: Session;
  onOpen: (id: string) => void;
  selected: string | null;
  onSelect: (groupId: string | null) => void;
}) {
  const [name, setName] = useState("");
  const [picked, setPicked] = useState<string[]>([]);
  const [joinId, setJoinId] = useState("");
  const [joinNote, setJoinNote] = useState("");
  return (
    <div class="list">
      <form
        class="card"
        aria-label="Create a group"
        onSubmit={async (e) => {
          e.preventDefault();
          let created: { convId: string } | undefined;
          if (await session.act(async (c) => (created = await c.createGroup(name.trim(), picked)))) {
            setName("");
            setPicked([]);
            await session.loadGroups();
            if (created) onOpen(created.convId);
          }
        }}
      >
        <label>
          New group
          <input
            name="group-name"
            required
            placeholder="Group name"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        {session.friends.length > 0 && (
          <fieldset>
            <legend>Members</legend>
            {session.friends.map((f) => (
              <label class="check" key={f.user?.uid}>
                <input
                  type="checkbox"
                  checked={picked.includes(f.user?.uid ?? "")}
                  onChange={(e) => {
                    const uid = f.user?.uid ?? "";
                    setPicked(e.currentTarget.checked ? [...picked, uid] : picked.filter((p) => p !== uid));
                  }}
                />
                {f.user?.name}
              </label>
            ))}
          </fieldset>
        )}
        <button type="submit">Create group</button>
      </form>
      {!session.unsupported.has("safety") && (
        <details class="card">
          <summary>Join a group by its id</summary>
          <form
            class="join"
            aria-label="Ask to join a group"
            onSubmit={async (e) => {
              e.preventDefault();
              if (await session.askToJoin(joinId.trim(), joinNote.trim())) {
                setJoinId("");
                setJoinNote("");
              }
            }}
          >
            <input
              aria-label="Group id"
              placeholder="Group id"
              inputMode="numeric"
              pattern="[0-9]+"
              required
              value={joinId}
              onInput={(e) => setJoinId(e.currentTarget.value)}
            />
            <input
              aria-label="Message to the group's admins"
              placeholder="A word to the admins (optional)"
              value={joinNote}
              onInput={(e) => setJoinNote(e.currentTarget.value)}
            />
            <button type="submit" class="secondary">
              Ask to join
            </button>
          </form>
        </details>
      )}
      {session.invitations.length > 0 && (
        <ul class="found" aria-label="Group invitations">
          {session.invitations.map((i) => (
            <li key={i.group?.groupId} class="row" data-testid="invitation">
              <span class="grow">
                {i.group?.name} <small>from {i.inviter?.name}</small>
              </span>
              <button
                type="button"
                aria-label={`Join ${i.group?.name}`}
                onClick={async () => {
                  const joined = await session.answerInvitation(i.group?.groupId ?? "", true);
                  if (joined) onOpen(joined.convId);
                }}
              >
                Join
              </button>
              <button
                type="button"
                class="link"
                aria-label={`Decline ${i.group?.name}`}
                onClick={() => void session.answerInvitation(i.group?.groupId ?? "", false)}
              >
                decline
              </button>
            </li>
          ))}
        </ul>
      )}
      <ul class="found" aria-label="Groups">
        {session.groups.length === 0 && <li class="empty">No groups yet.</li>}
        {session.groups.map((g) => {
          const requests = session.joinRequests.get(g.groupId)?.length ?? 0;
          return (
            <li key={g.groupId} class="row" data-testid="group">
              <span class="grow">
                {g.name} <small>({g.memberCount} members)</small>
                {requests > 0 && (
                  <span class="badge" title={`${requests} join request(s)`} data-testid="join-requests">
                    {requests}
                  </span>
                )}
              </span>
              <button type="button" class="secondary" onClick={() => onOpen(g.convId)}>
                Open
              </button>
              <button type="button" class="link" onClick={() => onSelect(g.groupId)}>
                members
              </button>
            </li>
          );
        })}
      </ul>
      {selected && <GroupDetails session={session} groupId={selected} onClose={() => onSelect(null)} />}
    </div>
  );
}

/** The account: who is logged in, and deleting the account (the password asked again, then confirmed). */
const PUSH_TEXT: Record<PushState, string> = {
  unsupported: "This browser cannot show notifications from a closed tab.",
  unavailable: "This server sends no browser notifications.",
  denied: "Notifications are blocked for this site in the browser's settings.",
  off: "Off: messages that arrive while no tab is open wait until you come back.",
  on: "On: a message that arrives while no tab is open shows as a notification.",
};

/** Browser notifications (Web Push) for this device: asks the browser's permission only on the click. */
function NotificationsCard({ session }: { session: Session }) {
  const [state, setState] = useState<PushState | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  useEffect(() => {
    void session.pushState().then(setState, () => setState("unavailable"));
  }, [session]);
  const toggle = async (on: boolean) => {
    setBusy(true);
    setError("");
    try {
      setState(await session.setPush(on));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-label="Notifications">
      <h3>Notifications</h3>
      <small>{state ? PUSH_TEXT[state] : "…"}</small>
      {(state === "off" || state === "on") && (
        <button type="button" class="secondary" disabled={busy} onClick={() => void toggle(state === "off")}>
          {state === "off" ? "Turn on notifications" : "Turn off notifications"}
        </button>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

function AccountPanel({ session }: { session: Session }) {
  const [password, setPassword] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  return (
    <div class="list">
      <section class="card" aria-label="Account">
        <div>
          <b>{session.nameOf(session.uid)}</b> <small>uid {session.uid}</small>
        </div>
      </section>
      <NotificationsCard session={session} />
      <form
        class="card danger-zone"
        aria-label="Delete account"
        onSubmit={(e) => {
          e.preventDefault();
          setError("");
          if (password) setConfirming(true);
        }}
      >
        <h3>Delete account</h3>
        <small>
          Your profile, friendships, groups and blocks go, and every session of yours ends. Your messages may stay
          readable to the others. This cannot be undone.
        </small>
        <label>
          Password
          <input
            type="password"
            name="delete-password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => {
              setPassword(e.currentTarget.value);
              setConfirming(false);
            }}
          />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {confirming ? (
          <fieldset class="confirm" aria-label="Confirm deleting the account">
            <small>Delete your account for good?</small>
            <div class="row">
              <button
                type="button"
                class="danger"
                disabled={busy}
                onClick={async () => {
                  setBusy(true);
                  const why = await session.deleteAccount(password);
                  // Deleted: the login screen has replaced this one.
                  if (!why) return;
                  setError(why);
                  setConfirming(false);
                  setBusy(false);
                }}
              >
                Yes, delete my account
              </button>
              <button type="button" class="secondary" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </div>
          </fieldset>
        ) : (
          <button type="submit" class="danger">
            Delete account
          </button>
        )}
      </form>
    </div>
  );
}

export function ChatScreen({ session }: { session: Session }) {
  const [, setVersion] = useState(0);
  const [panel, setPanel] = useState<Panel>("chats");
  const [open, setOpen] = useState<string | null>(null);
  /** The group whose members (and moderation) the Groups tab shows. */
  const [groupShown, setGroupShown] = useState<string | null>(null);
  useEffect(() => session.subscribe(() => setVersion(session.version)), [session]);
  useEffect(() => {
    const onVisible = () => {
      if (open && document.visibilityState === "visible") void session.markRead(open);
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [open]);

  const conv = open ? session.conversations.get(open) : undefined;
  const openConv = (id: string) => {
    setOpen(id);
    setPanel("chats");
  };
  // A clicked notification opens its conversation: in this tab (the service worker's message),
  // or in a new one (?conv=).
  useEffect(() => {
    const wanted = new URLSearchParams(window.location.search).get("conv");
    if (wanted) {
      openConv(wanted);
      window.history.replaceState(null, "", window.location.pathname);
    }
    if (!("serviceWorker" in navigator)) return;
    const onMessage = (e: MessageEvent) => {
      const data = e.data as { type?: string; convId?: string } | null;
      if (data?.type === "open-conversation" && data.convId) openConv(data.convId);
    };
    navigator.serviceWorker.addEventListener("message", onMessage);
    return () => navigator.serviceWorker.removeEventListener("message", onMessage);
  }, [session]);
  const panels: Panel[] = ["chats"];
  if (!session.unsupported.has("friends")) panels.push("friends");
  if (!session.unsupported.has("groups")) panels.push("groups");
  panels.push("account");
  const showGroup = (groupId: string) => {
    setGroupShown(groupId);
    setPanel("groups");
    // One pane at a time on a phone: the list side comes forward.
    if (window.matchMedia("(max-width: 700px)").matches) setOpen(null);
  };
  const hidden = (convId: string) => {
    if (open === convId) setOpen(null);
  };

  return (
    <div class={conv ? "layout has-chat" : "layout"}>
      <aside class="side">
        <header class="me">
          <div>
            <b data-testid="me">{session.nameOf(session.uid)}</b>
            <ConnectionBadge session={session} />
          </div>
          <button type="button" class="link" onClick={() => void session.logout()}>
            Log out
          </button>
        </header>
        <div class="tabs" role="tablist">
          {panels.map((p) => (
            <button
              type="button"
              role="tab"
              aria-selected={panel === p}
              class={panel === p ? "tab active" : "tab"}
              onClick={() => setPanel(p)}
              key={p}
            >
              {p === "chats"
                ? "Chats"
                : p === "friends"
                  ? `Friends${session.applications.length ? ` (${session.applications.length})` : ""}`
                  : p === "groups"
                    ? "Groups"
                    : "Account"}
            </button>
          ))}
        </div>
        {session.notice && (
          <p class="info" role="status">
            {session.notice}{" "}
            <button type="button" class="link" onClick={() => session.clearNotice()} aria-label="Dismiss">
              ✕
            </button>
          </p>
        )}
        {panel === "chats" && (
          <ConversationList
            session={session}
            open={open}
            onOpen={openConv}
            onHidden={hidden}
            onGroupSettings={showGroup}
          />
        )}
        {panel === "friends" && <FriendsPanel session={session} onOpen={openConv} />}
        {panel === "groups" && (
          <GroupsPanel session={session} onOpen={openConv} selected={groupShown} onSelect={setGroupShown} />
        )}
        {panel === "account" && <AccountPanel session={session} />}
      </aside>
      {conv ? (
        <ChatView session={session} conv={conv} onBack={() => setOpen(null)} onGroupSettings={showGroup} />
      ) : (
        <section class="chat empty-chat">
          <p>Pick a conversation, or find someone to talk to.</p>
        </section>
      )}
    </div>
  );
}
