/*
 * The API docs page (/docs): asks for the dashboard key like the dashboard (the same
 * sessionStorage entry, so a signed-in tab goes straight in), fetches /openapi.json with
 * it, and renders Swagger UI (served by the app from the fastapi-offline package). "Try it
 * out" requests carry the key, to this server only.
 */
import { $, ApiError, auth, keyHeaders, keyRefused, promptForKey, show } from "./core.js";

const SCHEMA = "/openapi.json";

/** GET /openapi.json with `key` (or the stored one); the schema, or an ApiError. */
async function fetchSchema(key) {
  let response;
  try {
    response = await fetch(SCHEMA, {
      headers: keyHeaders(SCHEMA, key),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (_) {
    throw new ApiError("cannot reach the EchoPilot server", 0, "network");
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body && body.openapi) return body;
  const error = (body && body.error) || {};
  const message = error.message || response.status + " " + response.statusText;
  throw new ApiError(message, response.status, error.code);
}

function sameOrigin(url) {
  try {
    return new URL(url, window.location.href).origin === window.location.origin;
  } catch (_) {
    return false;
  }
}

/** Swagger UI's hook on every request it makes: the key goes to this server only. */
function withKey(request) {
  const key = auth.get();
  if (key && sameOrigin(request.url)) request.headers["X-Dash-Key"] = key;
  return request;
}

function render(spec) {
  show($("login"), false);
  show($("docs"), true);
  show($("sign-out"), true);
  if (!window.SwaggerUIBundle) {
    const msg = $("docs-msg");
    msg.textContent = "Swagger UI did not load (/static/vendor/swagger-ui/swagger-ui-bundle.js).";
    show(msg, true);
    return;
  }
  window.SwaggerUIBundle({
    spec,
    domNode: $("swagger-ui"),
    deepLinking: false,
    validatorUrl: null, // no badge fetched from a validator service: nothing leaves this server
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    requestInterceptor: withKey,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}

function showLogin(message, kind) {
  show($("docs"), false);
  show($("sign-out"), false);
  $("swagger-ui").replaceChildren();
  promptForKey(message, kind);
}

async function onLogin(event) {
  event.preventDefault();
  const input = $("login-key");
  const key = input.value.trim();
  if (!key) {
    showLogin("Enter the dashboard key.");
    return;
  }
  const btn = $("login-submit");
  btn.disabled = true;
  show($("login-msg"), false);
  try {
    const spec = await fetchSchema(key);
    auth.set(key);
    input.value = "";
    render(spec);
  } catch (err) {
    showLogin(keyRefused(err));
    input.select();
  } finally {
    btn.disabled = false;
  }
}

async function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("sign-out").addEventListener("click", (ev) => {
    ev.preventDefault();
    auth.clear();
    showLogin("Signed out.", "ok");
  });
  if (!auth.get()) {
    showLogin();
    return;
  }
  try {
    render(await fetchSchema());
  } catch (err) {
    if (err.status === 401) {
      auth.clear();
      showLogin("Your key was not accepted (it may have changed). Enter it again.");
    } else {
      showLogin(keyRefused(err));
    }
  }
}

start();
