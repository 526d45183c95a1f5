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

  async function loginKey(password, kdf) {
    var out = await window.hashwasm.argon2id({
      password: password,
      salt: unhex(kdf.salt),
      parallelism: kdf.parallelism,
      iterations: kdf.iterations,
      memorySize: kdf.memory_kib,
      hashLength: 64,
      outputType: 'binary'
    });
    return hex(out.slice(0, 32));
  }

  async function loginParams(form) {
    var name = form.elements.name.value;
    var operator = form.elements.kind.value === 'operator';
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
