// The login popup's last page: tell the signing iframe (same origin, exact targetOrigin) to look
// at the server now, then close. The iframe does not depend on this: it polls.
(function () {
  'use strict';
  var root = document.getElementById('popup');
  if (!root) return;
  try {
    if (window.opener) window.opener.postMessage({ type: 'hujjat:login-done', v: 1, ok: root.dataset.ok === '1' }, location.origin);
  } catch (e) { /* the opener is gone or cross-origin: polling covers it */ }
  document.getElementById('close').addEventListener('click', function () { window.close(); });
  if (root.dataset.ok === '1') setTimeout(function () { window.close(); }, 1500);
})();
