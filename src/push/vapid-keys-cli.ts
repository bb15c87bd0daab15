import webpush from "web-push";

/**
 * `npm run push:vapid-keys`: a new VAPID key pair for Web Push, as the settings take it. Made
 * once per deployment: browsers subscribe to the public key, so a new pair leaves every
 * existing subscription unusable (its devices register again when the web client next opens).
 */
const { publicKey, privateKey } = webpush.generateVAPIDKeys();
console.log(
  [
    "# Web Push (VAPID) keys: the private one is a secret (set it on the chat nodes);",
    "# gate needs the public one only (it hands it to browsers).",
    `WEB_PUSH_VAPID_PUBLIC_KEY=${publicKey}`,
    `WEB_PUSH_VAPID_PRIVATE_KEY=${privateKey}`,
    "WEB_PUSH_SUBJECT=mailto:ops@example.com",
  ].join("\n"),
);
