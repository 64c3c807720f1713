// Slack-compatible webhook notifications. A webhook that is down never fails a rollout: delivery is best effort,
// bounded in time, and a failure is only reported on stderr.
// https://api.slack.com/messaging/webhooks
export async function notify(webhooks: readonly string[], text: string, warn: (message: string) => void, timeoutMs = 5000): Promise<void> {
  await Promise.all(
    webhooks.map(async (url) => {
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ text }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!res.ok) warn(`webhook ${new URL(url).host} answered ${res.status}`);
      } catch (err) {
        // Only the host: webhook URLs carry their secret in the path.
        warn(`webhook ${new URL(url).host} unreachable: ${(err as Error).name}`);
      }
    }),
  );
}
