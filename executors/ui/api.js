// Talking to the service: JSON flow requests, the API key, and a clear message when the
// service cannot be reached at all.

/** The service did not answer (not running, or the network is down). */
export class ServiceDown extends Error {
  constructor() {
    super(`cannot reach the service at ${location.origin}; is \`app.py serve\` running?`);
    this.name = "ServiceDown";
  }
}

// A JSON error body's detail (a string, or FastAPI's list of validation problems) as one line.
function describeError(body, response) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return `HTTP ${response.status} ${response.statusText}`;
}

async function fetchOrDown(url, init) {
  try {
    return await fetch(url, init);
  } catch {
    throw new ServiceDown();
  }
}

// fetch(), asking once for the API key when the server wants one. The key goes into a
// same-site cookie, because <audio> elements cannot send the X-API-Key header.
export async function send(url, init) {
  const response = await fetchOrDown(url, init);
  if (response.status !== 401) return response;
  const key = window.prompt("This server needs an API key (AUDIOSEARCH_API_KEY):");
  if (!key) return response;
  document.cookie = `audiosearch_api_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
  return fetchOrDown(url, init);
}

/** The JSON body of a response, or an Error saying what went wrong. */
export async function responseJson(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok || !body) throw new Error(describeError(body, response));
  return body;
}

/** POST documents to one of the flow's endpoints (/search, /list, /clips, ...): its documents. */
export async function post(endpoint, data, parameters) {
  const response = await send(`/${endpoint}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data, parameters }),
  });
  return (await responseJson(response)).data;
}

/** GET a JSON route of the gateway (/limits, /peaks/{id}, /map). */
export async function getJson(url) {
  return responseJson(await send(url));
}

/** POST a multipart form (an upload) to the gateway: the flow's documents. */
export async function upload(url, form) {
  return (await responseJson(await send(url, { method: "POST", body: form }))).data;
}
