// Cairn console: derives login keys in the browser, so a password never
// reaches the server (the same argon2id as `cairn login`: 64 bytes of
// argon2id(password, salt), the first 32 are the login key).
//
// Forms with `data-derive` carry a password field WITHOUT a name (it is
// never submitted, even if this script fails) and a hidden `login_key`:
//   data-derive="login"  asks the node for the account's or operator's
//                        parameters (POST /api/v1/login/params or
//                        /api/v1/operators/login/params), then derives;
//   data-derive="create" draws a fresh salt, fills the hidden kdf_* fields
//                        with it and the form's default cost, then derives.
//
// A form with `data-listing` (the account's name) opens a snapshot's
// listing in the browser: it derives the wrap key from the typed password
// (the last 32 bytes of the same argon2id output), posts the form (the
// password field has no name) to have the device seal the listing, opens
// it with WebCrypto (HKDF-SHA256 with the form's data-info, then AES-GCM
// with data-aad: format v2 of SealedListing) and fills the next form with
// a box per path, to restore the ticked ones. `window.cairnListing.open`
// is those steps alone, for the browser test's known-answer vector.
//
// An element with `data-events` follows a running job: each `job` event of
// that server-sent event stream (a JobInfo) fills its `data-field` children
// until the job has a status, then the stream is closed.
(function () {
  'use strict';

  function hex(bytes) {
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, '0'); }).join('');
  }

  function unhex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
    return out;
  }

  async function argon2(password, kdf) {
    return window.hashwasm.argon2id({
      password: password,
      salt: unhex(kdf.salt),
      parallelism: kdf.parallelism,
      iterations: kdf.iterations,
      memorySize: kdf.memory_kib,
      hashLength: 64,
      outputType: 'binary'
    });
  }

  async function loginKey(password, kdf) {
    return hex((await argon2(password, kdf)).slice(0, 32));
  }

  async function params(operator, name) {
    var url = operator ? '/api/v1/operators/login/params' : '/api/v1/login/params';
    var body = operator ? { name: name } : { user: name };
    var r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin'
    });
    if (!r.ok) throw new Error('the server answered ' + r.status);
    return r.json();
  }

  function loginParams(form) {
    return params(form.elements.kind.value === 'operator', form.elements.name.value);
  }

  // Opens a v2 sealed listing (hex: nonce ‖ ciphertext ‖ tag) with the
  // account's password; answers the listing's text.
  async function openListing(password, kdf, sealedHex, info, aad) {
    var wrap = (await argon2(password, kdf)).slice(32, 64);
    var subtle = window.crypto.subtle;
    var ikm = await subtle.importKey('raw', wrap, 'HKDF', false, ['deriveKey']);
    var enc = new TextEncoder();
    var key = await subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(info) },
      ikm, { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
    var sealed = unhex(sealedHex);
    var plain = await subtle.decrypt(
      { name: 'AES-GCM', iv: sealed.slice(0, 12), additionalData: enc.encode(aad) },
      key, sealed.slice(12));
    return new TextDecoder().decode(plain);
  }

  window.cairnListing = { open: openListing };

  async function showListing(form, status) {
    var password = form.querySelector('input[type=password]');
    var kdf = await params(false, form.dataset.listing);
    status.textContent = 'Asking the device for the listing…';
    var r = await fetch(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(new FormData(form)).toString(),
      credentials: 'same-origin'
    });
    var answer = await r.json().catch(function () { return {}; });
    if (!r.ok) throw new Error(answer.message || ('the server answered ' + r.status));
    if (answer.version !== Number(form.dataset.version)) {
      throw new Error('the device sealed listing format ' + answer.version +
        '; upgrade cairn on the device');
    }
    status.textContent = 'Opening the listing in your browser…';
    var text;
    try {
      text = await openListing(password.value, kdf, answer.sealed, form.dataset.info, form.dataset.aad);
    } catch (e) {
      throw new Error('it does not open with this password');
    }
    password.value = '';
    var entries = JSON.parse(text);
    var pick = form.nextElementSibling;
    var list = pick.querySelector('ul');
    list.replaceChildren();
    entries.forEach(function (e, n) {
      var li = document.createElement('li');
      var box = document.createElement('input');
      box.type = 'checkbox';
      box.name = 'paths';
      box.value = e.path;
      box.id = 'l-' + n;
      var label = document.createElement('label');
      label.htmlFor = box.id;
      label.textContent = ' ' + e.path + (e.type === 'dir' ? '/' : ' (' + e.size + ' bytes)');
      li.append(box, label);
      list.append(li);
    });
    pick.elements.snapshot.value = form.elements.snapshot.value;
    pick.hidden = false;
    status.textContent = entries.length + ' entries.';
  }

  function newParams(form) {
    var salt = new Uint8Array(16);
    window.crypto.getRandomValues(salt);
    var kdf = {
      memory_kib: Number(form.dataset.memoryKib),
      iterations: Number(form.dataset.iterations),
      parallelism: Number(form.dataset.parallelism),
      salt: hex(salt)
    };
    form.elements.kdf_memory_kib.value = kdf.memory_kib;
    form.elements.kdf_iterations.value = kdf.iterations;
    form.elements.kdf_parallelism.value = kdf.parallelism;
    form.elements.kdf_salt.value = kdf.salt;
    return kdf;
  }

  document.addEventListener('submit', async function (ev) {
    var form = ev.target;
    if (form.dataset.listing !== undefined) {
      ev.preventDefault();
      var st = form.querySelector('[role=status]');
      st.textContent = 'Deriving the key in your browser…';
      showListing(form, st).catch(function (e) {
        st.textContent = 'Could not show the files: ' + e.message;
      });
      return;
    }
    var mode = form.dataset.derive;
    if (!mode) return;
    ev.preventDefault();
    var password = form.querySelector('input[type=password]');
    var status = form.querySelector('[role=status]');
    var button = form.querySelector('button[type=submit]');
    button.disabled = true;
    status.textContent = 'Deriving the key in your browser…';
    try {
      var kdf = mode === 'login' ? await loginParams(form) : newParams(form);
      form.elements.login_key.value = await loginKey(password.value, kdf);
      password.value = '';
      status.textContent = 'Sending…';
      form.submit();
    } catch (e) {
      status.textContent = 'Could not derive the key: ' + e.message;
      button.disabled = false;
    }
  });

  function follow(el) {
    var source = new EventSource(el.dataset.events);
    source.addEventListener('job', function (ev) {
      var job = JSON.parse(ev.data);
      var status = job.status || 'running';
      var values = { status: status, files: job.files, bytes: job.bytes, error: job.error || '' };
      Object.keys(values).forEach(function (k) {
        var field = el.querySelector('[data-field=' + k + ']');
        if (field) field.textContent = String(values[k]);
      });
      var st = el.querySelector('[data-field=status]');
      if (st) st.className = status === 'succeeded' ? 'ok' : (status === 'running' ? 'muted' : 'bad');
      if (job.status) {
        source.close();
        el.dataset.ended = status;
      }
    });
    source.onerror = function () {
      // The stream ends with the job; a dropped one is reopened by the browser.
      if (el.dataset.ended) source.close();
    };
  }

  function start() {
    document.querySelectorAll('[data-events]').forEach(follow);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
