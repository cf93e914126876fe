// The signing iframe (and its refusal pages). No framework. Everything it needs is in data-*
// attributes of #hujjat, rendered by the server: the parent origin is the session's embedOrigin,
// never document.referrer. Every message to the parent uses that exact targetOrigin; messages
// from any other origin (or any other window) are ignored.
(function () {
  'use strict';
  var root = document.getElementById('hujjat');
  if (!root) return;
  var d = root.dataset;
  var parentOrigin = d.embedOrigin || '';
  var framed = window.parent && window.parent !== window;
  var sent = {};

  function post(type, extra, once) {
    if (!framed || !parentOrigin) return;
    if (once && sent[type]) return;
    sent[type] = true;
    var msg = { type: type, v: 1, sessionId: d.sessionId };
    for (var k in extra || {}) msg[k] = extra[k];
    window.parent.postMessage(msg, parentOrigin);
  }

  // size hints for the parent
  // (the content's own height, not the viewport's: otherwise a parent that follows the hint and
  // the frame's height would chase each other)
  var lastHeight = 0;
  function resize() {
    var r = root.getBoundingClientRect();
    var h = Math.ceil(r.height + (r.top + window.scrollY) * 2);
    if (Math.abs(h - lastHeight) > 2) { lastHeight = h; post('hujjat:resize', { height: h }); }
  }
  if (window.ResizeObserver) new ResizeObserver(resize).observe(root);

  if (d.page === 'error') {
    // a refusal page inside the MIS's iframe: tell the parent why
    post(d.event || 'hujjat:error', { code: d.code }, true);
    resize();
    return;
  }

  var handle = d.handle, csrf = d.csrf;
  var status = d.status, popup = null, timer = null;
  var messages = {};
  Array.prototype.forEach.call(document.querySelectorAll('#messages li'), function (li) { messages[li.dataset.code] = li.textContent; });
  var errorEl = document.getElementById('error');

  function showError(code, message) {
    if (!code) { errorEl.hidden = true; errorEl.textContent = ''; return; }
    errorEl.textContent = message || messages[code] || messages.internal;
    errorEl.dataset.code = code;
    errorEl.hidden = false;
  }

  function render(st) {
    ['opened', 'authenticated', 'signed', 'cancelled', 'expired', 'failed'].forEach(function (s) {
      var el = document.getElementById('st-' + s);
      if (el) el.hidden = s !== st;
    });
    document.getElementById('cancel-form').hidden = !(st === 'opened' || st === 'authenticated');
  }

  function apply(j) {
    var prev = status;
    status = j.status;
    if (j.signer) {
      document.getElementById('signer-name').textContent = j.signer.name || '';
      document.getElementById('signer-pinfl').textContent = j.signer.pinfl || '';
    }
    if (j.signedVersion) document.getElementById('signed-version').textContent = String(j.signedVersion);
    render(status);
    if (j.error && (status === 'opened' || status === 'failed')) showError(j.error.code, j.error.message);
    else if (status !== 'opened') showError(null);
    if (status === 'authenticated') post('hujjat:authenticated', {}, true);
    if (status === 'signed') post('hujjat:signed', { documentId: d.documentId, version: j.signedVersion }, true);
    if (status === 'cancelled') post('hujjat:cancelled', {}, true);
    if (status === 'expired') post('hujjat:expired', {}, true);
    if (status === 'failed') post('hujjat:error', { code: j.error ? j.error.code : 'internal' }, true);
    if (prev !== status) resize();
    if (status !== 'opened' && status !== 'authenticated') stopPolling();
  }

  function poll() {
    return fetch('/s/' + handle + '/status', { headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (j) { if (j.status) apply(j); else if (j.error) showError(j.error.code, j.error.message); })
      .catch(function () { /* transient: the next tick retries */ });
  }
  function startPolling() { if (!timer) timer = setInterval(poll, 1500); }
  function stopPolling() { if (timer) { clearInterval(timer); timer = null; } }

  // login in a popup: opened synchronously in the click (no popup blocker); the iframe learns the
  // result from the server (polling), the popup's message only makes it poll at once
  var loginUrl = '/s/' + handle + '/login?csrf=' + encodeURIComponent(csrf);
  document.getElementById('login').addEventListener('click', function () {
    showError(null);
    popup = window.open(loginUrl, 'hujjat-oneid', 'popup,width=560,height=720');
    document.getElementById('waiting').hidden = false;
    startPolling();
  });
  document.getElementById('login-tab').addEventListener('click', function () {
    document.getElementById('waiting').hidden = false;
    startPolling();
  });

  function send(action, body) {
    return fetch('/s/' + handle + '/' + action, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(body).toString()
    }).then(function (r) { return r.json(); });
  }

  var signForm = document.getElementById('sign-form');
  var signBtn = document.getElementById('sign');
  signForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!document.getElementById('consent').checked) { showError('consent_required'); return; }
    signBtn.disabled = true;
    signBtn.textContent = d.signingText;
    send('sign', new FormData(signForm)).then(function (j) {
      if (j.status) apply(j);
      else if (j.error) {
        showError(j.error.code, j.error.message);
        post('hujjat:error', { code: j.error.code });
        poll();
      }
    }).catch(function () { showError('internal'); }).then(function () {
      signBtn.disabled = false;
      signBtn.textContent = d.signText;
    });
  });

  var cancelForm = document.getElementById('cancel-form');
  cancelForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    send('cancel', new FormData(cancelForm)).then(function (j) {
      if (j.status) apply(j); else if (j.error) showError(j.error.code, j.error.message);
    }).catch(function () { showError('internal'); });
  });

  window.addEventListener('message', function (ev) {
    var m = ev.data;
    if (!m || typeof m !== 'object') return;
    if (ev.origin === location.origin && popup && ev.source === popup && m.type === 'hujjat:login-done') { poll(); return; }
    if (framed && ev.origin === parentOrigin && ev.source === window.parent) {
      if (m.type === 'hujjat:cancel' && (status === 'opened' || status === 'authenticated')) cancelForm.requestSubmit();
      return;
    }
    // anything else is ignored
  });

  render(status);
  if (d.error && status === 'opened') showError(d.error);
  post('hujjat:ready', { documentId: d.documentId, version: Number(d.version) }, true);
  apply({ status: status, signedVersion: d.signedVersion ? Number(d.signedVersion) : undefined, error: d.error ? { code: d.error } : undefined });
  if (status === 'opened' || status === 'authenticated') startPolling();
  resize();
})();
