import { GateClient, type LoginAnswer } from "@shardchat/sdk";
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { AuthScreen } from "./auth.js";
import { ChatScreen } from "./chat.js";
import { forgetLogin, Session, savedLogin, saveLogin } from "./session.js";
import "./style.css";

const NOTICES = {
  kicked: "You were logged in elsewhere: this window was signed out. Log in again to continue here.",
  expired: "Your session expired: please log in again.",
  logout: "",
  deleted: "Your account was deleted.",
} as const;

function App() {
  // gate serves this page, so gate's API is on the same origin.
  const gate = useMemo(() => new GateClient(window.location.origin), []);
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState("");

  const start = (login: LoginAnswer & { name: string }) => {
    saveLogin(login);
    const s = new Session(gate, login, (why) => {
      setNotice(NOTICES[why]);
      setSession(null);
    });
    setNotice("");
    setSession(s);
    s.start();
  };

  useEffect(() => {
    const saved = savedLogin();
    if (saved) start(saved);
    else forgetLogin();
  }, []);

  if (!session) return <AuthScreen gate={gate} notice={notice} onLoggedIn={start} key={notice} />;
  return <ChatScreen session={session} />;
}

const root = document.getElementById("app");
if (root) render(<App />, root);
