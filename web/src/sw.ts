/**
 * The service worker (built to /sw.js): shows the chat nodes' Web Push notifications (the
 * payload of src/push/web-push.ts, WebPushPayload) and opens the conversation on a click. The
 * page's tsconfig has the DOM library, not WebWorker's (the two conflict), so the little of
 * the worker's scope used here is typed here.
 */

interface PushPayload {
  title: string;
  body: string;
  convId: string;
  seq: number;
  badge: number;
  tag: string;
}

interface ExtendableEventLike extends Event {
  waitUntil(work: Promise<unknown>): void;
}

interface PushEventLike extends ExtendableEventLike {
  data: { json(): unknown } | null;
}

interface NotificationEventLike extends ExtendableEventLike {
  notification: Notification;
}

interface WindowClientLike {
  url: string;
  focus(): Promise<unknown>;
  postMessage(message: unknown): void;
}

interface WorkerScope {
  registration: ServiceWorkerRegistration;
  location: Location;
  navigator: { setAppBadge?(count: number): Promise<void> };
  clients: {
    matchAll(options: { type: "window"; includeUncontrolled: boolean }): Promise<WindowClientLike[]>;
    openWindow(url: string): Promise<unknown>;
  };
  addEventListener(type: "push", listener: (event: PushEventLike) => void): void;
  addEventListener(type: "notificationclick", listener: (event: NotificationEventLike) => void): void;
}

const worker = self as unknown as WorkerScope;

worker.addEventListener("push", (event) => {
  const payload = (event.data?.json() ?? {}) as Partial<PushPayload>;
  const shown = worker.registration.showNotification(payload.title ?? "shardchat", {
    body: payload.body ?? "New message",
    // One notification per conversation: a newer one replaces it.
    tag: payload.tag ?? payload.convId ?? "shardchat",
    data: { convId: payload.convId ?? "" },
  });
  const badge = typeof payload.badge === "number" ? worker.navigator.setAppBadge?.(payload.badge) : undefined;
  event.waitUntil(Promise.all([shown, badge?.catch(() => undefined)]));
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const convId = (event.notification.data as { convId?: string } | null)?.convId ?? "";
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((w) => new URL(w.url).origin === worker.location.origin);
      if (open) {
        await open.focus();
        open.postMessage({ type: "open-conversation", convId });
        return;
      }
      await worker.clients.openWindow(`/?conv=${encodeURIComponent(convId)}`);
    })(),
  );
});

export {};
