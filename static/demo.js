// The demo MIS page. It accepts messages only from hujjat's origin AND from its own iframe's
// window, treats them as hints, and asks its own backend (which asks hujjat's status API) for the
// result.
(function () {
  'use strict';
  var root = document.getElementById('demo');
  var HUJJAT = root.dataset.hujjat;
  var frame = null, current = null;
  var events = document.getElementById('events');

  function log(list, text, cls) {
    var li = document.createElement('li');
    li.textContent = text;
    if (cls) li.className = cls;
    list.appendChild(li);
  }

  // exposed for the browser tests: embed any URL in the signing slot
  window.demoEmbed = function (url) {
    var slot = document.getElementById('frame-slot');
    slot.textContent = '';
    frame = document.createElement('iframe');
    frame.id = 'signing';
    frame.title = 'hujjat signing';
    frame.src = url;
    slot.appendChild(frame);
    return frame;
  };

  window.addEventListener('message', function (ev) {
    if (ev.origin !== HUJJAT || !frame || ev.source !== frame.contentWindow) return; // not ours: ignored
    var m = ev.data || {};
    if (typeof m.type !== 'string' || m.type.indexOf('hujjat:') !== 0) return;
    if (m.type === 'hujjat:resize') { if (m.height > 300) frame.style.height = Math.min(m.height, 1400) + 'px'; return; }
    log(events, m.type + ' ' + JSON.stringify(m), 'event ' + m.type.replace(':', '-'));
    if (m.type === 'hujjat:signed' && current && m.sessionId === current.sessionId) fetchResult(current.sessionId);
  });

  function fetchResult(id) {
    fetch('/api/sessions/' + id + '/result').then(function (r) { return r.json(); }).then(function (j) {
      var res = document.getElementById('result');
      res.hidden = false;
      var v = document.getElementById('verdict');
      var rep = j.verification || {};
      v.textContent = 'status ' + (j.session && j.session.status) + ', signed version ' + (j.session && j.session.signedVersion) +
        ' — verification: ' + (rep.ok ? 'OK' : 'FAILED');
      v.className = rep.ok ? 'ok' : 'bad';
      v.id = 'verdict';
      v.dataset.ok = rep.ok ? '1' : '0';
      document.getElementById('bundle').textContent = JSON.stringify(j.bundle, null, 2);
      refreshWebhooks();
    });
  }

  function refreshWebhooks() {
    fetch('/api/webhooks').then(function (r) { return r.json(); }).then(function (j) {
      var list = document.getElementById('webhooks');
      list.textContent = '';
      (j.webhooks || []).forEach(function (w) { log(list, w.type + ' ' + JSON.stringify(w.data) + (w.verified ? ' ✓ signature' : ''), 'webhook'); });
    });
  }
  setInterval(refreshWebhooks, 2000);

  document.getElementById('start').addEventListener('click', function () {
    var info = document.getElementById('info');
    info.textContent = 'composing…';
    fetch('/api/sessions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ locale: document.getElementById('locale').value })
    }).then(function (r) { return r.json(); }).then(function (j) {
      if (j.error) { info.textContent = j.error; return; }
      current = j;
      info.textContent = 'document ' + j.documentId + ', signing session ' + j.sessionId + ' (launch URL valid until ' + j.expiresAt + ')';
      info.dataset.sessionId = j.sessionId;
      info.dataset.documentId = j.documentId;
      window.demoEmbed(j.launchUrl);
    }).catch(function (e) { info.textContent = 'failed: ' + e; });
  });
})();
