import type { GateClient, LoginAnswer } from "@shardchat/sdk";
import { useEffect, useState } from "preact/hooks";
import { AppError, ErrorCode, errorName } from "../../src/errors.js";

type Tab = "login" | "register" | "reset";

function explain(err: unknown): string {
  if (err instanceof AppError) {
    const friendly: Partial<Record<ErrorCode, string>> = {
      [ErrorCode.BAD_CREDENTIALS]: "Wrong user, email or password.",
      [ErrorCode.VERIFY_CODE_WRONG]: "That code is not right.",
      [ErrorCode.VERIFY_CODE_EXPIRED]: "That code has expired: ask for a new one.",
      [ErrorCode.USER_EXISTS]: "That user name is taken.",
      [ErrorCode.EMAIL_EXISTS]: "That email already has an account.",
      [ErrorCode.NO_CHAT_NODE]: "No chat server is available right now.",
      [ErrorCode.UNAVAILABLE]: "The server does not answer.",
    };
    return friendly[err.code] ?? `${errorName(err.code)}: ${err.message}`;
  }
  return (err as Error).message;
}

/** Seconds left until `until` (ms), ticking once a second. */
function useCountdown(until: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (until <= now) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [until, now]);
  return Math.max(0, Math.ceil((until - now) / 1000));
}

/** Email + "send code" with its cool-down, shared by register and reset. */
function CodeRequest(props: {
  gate: GateClient;
  email: string;
  onEmail: (v: string) => void;
  onError: (e: string) => void;
}) {
  const [until, setUntil] = useState(0);
  const [sent, setSent] = useState(false);
  const left = useCountdown(until);
  const send = async () => {
    props.onError("");
    try {
      const answer = await props.gate.requestVerifyCode(props.email);
      setSent(true);
      setUntil(Date.now() + (answer.retryAfterSeconds ?? 60) * 1000);
    } catch (err) {
      const retry = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (retry) setUntil(Date.now() + retry * 1000);
      props.onError(explain(err));
    }
  };
  return (
    <div class="row">
      <label class="grow">
        Email
        <input
          name="email"
          type="email"
          autoComplete="email"
          required
          value={props.email}
          onInput={(e) => props.onEmail(e.currentTarget.value)}
        />
      </label>
      <button
        type="button"
        class="secondary"
        disabled={left > 0 || !props.email}
        onClick={send}
        data-testid="send-code"
      >
        {left > 0 ? `Resend in ${left}s` : sent ? "Resend code" : "Send code"}
      </button>
    </div>
  );
}

export function AuthScreen(props: {
  gate: GateClient;
  notice: string;
  onLoggedIn: (login: LoginAnswer & { name: string }) => void;
}) {
  const [tab, setTab] = useState<Tab>("login");
  const [error, setError] = useState("");
  const [info, setInfo] = useState(props.notice);
  const [busy, setBusy] = useState(false);
  const [login, setLogin] = useState("");
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");

  const run = (work: () => Promise<void>) => async (e: Event) => {
    e.preventDefault();
    setError("");
    setBusy(true);
    try {
      await work();
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  };

  const doLogin = async (who: string, pw: string) => {
    const answer = await props.gate.login(who, pw, "web");
    props.onLoggedIn({ ...answer, name: who.includes("@") ? (who.split("@")[0] ?? who) : who });
  };

  const switchTo = (t: Tab) => {
    setTab(t);
    setError("");
    setInfo("");
  };

  return (
    <main class="auth">
      <h1>shardchat</h1>
      <div class="tabs" role="tablist">
        {(["login", "register", "reset"] as Tab[]).map((t) => (
          <button
            type="button"
            role="tab"
            aria-selected={tab === t}
            class={tab === t ? "tab active" : "tab"}
            onClick={() => switchTo(t)}
            key={t}
          >
            {t === "login" ? "Log in" : t === "register" ? "Register" : "Reset password"}
          </button>
        ))}
      </div>
      {info && <p class="info">{info}</p>}
      {tab === "login" && (
        <form onSubmit={run(() => doLogin(login, password))} aria-label="Log in">
          <label>
            User name or email
            <input
              name="login"
              autoComplete="username"
              required
              value={login}
              onInput={(e) => setLogin(e.currentTarget.value)}
            />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <button type="submit" disabled={busy}>
            Log in
          </button>
        </form>
      )}
      {tab === "register" && (
        <form
          aria-label="Register"
          onSubmit={run(async () => {
            await props.gate.register({ user: name, email, password, code });
            await doLogin(name, password);
          })}
        >
          <label>
            User name
            <input
              name="user"
              autoComplete="username"
              pattern="[A-Za-z0-9_]{3,32}"
              title="3 to 32 letters, digits or _"
              required
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </label>
          <CodeRequest gate={props.gate} email={email} onEmail={setEmail} onError={setError} />
          <label>
            Code from the email
            <input
              name="code"
              inputMode="numeric"
              pattern="[0-9]{6}"
              autoComplete="one-time-code"
              required
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              autoComplete="new-password"
              minLength={8}
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <button type="submit" disabled={busy}>
            Create account
          </button>
        </form>
      )}
      {tab === "reset" && (
        <form
          aria-label="Reset password"
          onSubmit={run(async () => {
            await props.gate.resetPassword({ email, password, code });
            setLogin(email);
            setPassword("");
            setTab("login");
            setInfo("Password changed: log in with the new one.");
          })}
        >
          <CodeRequest gate={props.gate} email={email} onEmail={setEmail} onError={setError} />
          <label>
            Code from the email
            <input
              name="code"
              inputMode="numeric"
              pattern="[0-9]{6}"
              required
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          </label>
          <label>
            New password
            <input
              name="password"
              type="password"
              autoComplete="new-password"
              minLength={8}
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <button type="submit" disabled={busy}>
            Set new password
          </button>
        </form>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </main>
  );
}
