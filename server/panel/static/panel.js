// The manager's panel, live: it listens to /painel/eventos (Server-Sent Events) and puts
// each snapshot's texts in place; it sends the actions (reconcile, forget, keys) with the
// session's CSRF token and shows their answers. Every text from the server goes through
// textContent (never innerHTML): a machine id typed as HTML stays text. No inline script
// anywhere: the page's Content-Security-Policy allows only this file.
'use strict';

(function () {
  const root = document.getElementById('panel');
  if (!root) return;

  const SVG = 'http://www.w3.org/2000/svg';
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute('content') : '';
  const eventsUrl = root.dataset.eventsUrl;
  const stateUrl = root.dataset.stateUrl;
  const cardsBox = document.getElementById('cards');
  const cardTemplate = document.getElementById('card-template');
  const liveStatus = document.getElementById('live-status');
  const actionError = document.getElementById('action-error');
  let lastChart = null;

  function text(el, value) {
    if (el) el.textContent = value == null ? '' : String(value);
  }

  function loginUrl() {
    return '/painel/entrar?next=' + encodeURIComponent(location.pathname + location.search);
  }

  // -- rendering a snapshot ----------------------------------------------------------

  function cardElements() {
    const found = new Map();
    for (const el of cardsBox.querySelectorAll('[data-card]')) {
      found.set(el.dataset.machineId, el);
    }
    return found;
  }

  function newCard() {
    return cardTemplate.content.firstElementChild.cloneNode(true);
  }

  function fillCard(el, card) {
    el.dataset.machineId = card.id;
    el.className = 'card state-' + card.state + (card.alert ? ' has-alert' : '');
    const badge = el.querySelector('[data-badge]');
    if (badge) {
      if (badge.getAttribute('src') !== card.icon) badge.setAttribute('src', card.icon);
      badge.setAttribute('alt', card.fields.stateLabel || '');
    }
    const warn = new Set(card.warn || []);
    for (const field of el.querySelectorAll('[data-f]')) {
      const name = field.dataset.f;
      const value = card.fields[name] || '';
      if (field.textContent !== value) text(field, value);
      field.classList.toggle('warn', warn.has(name));
      const row = field.closest('[data-row]');
      if (row && row.hasAttribute('data-optional')) row.hidden = value === '';
    }
    const result = el.querySelector('[data-row="commandResult"]');
    if (result) result.classList.toggle('failed', !!card.commandFailed);
    for (const input of el.querySelectorAll('[data-machine-input]')) input.value = card.id;
    for (const button of el.querySelectorAll('[data-forget]')) button.dataset.machine = card.id;
  }

  function renderCards(cards) {
    const existing = cardElements();
    const wanted = new Set(cards.map((c) => c.id));
    for (const [id, el] of existing) {
      if (!wanted.has(id)) el.remove();
    }
    let previous = null;
    for (const card of cards) {
      let el = existing.get(card.id);
      if (!el) el = newCard();
      fillCard(el, card);
      // Keep the snapshot's order; move a card only when it is out of place (a moved
      // node would lose an open strategy list).
      const expected = previous ? previous.nextElementSibling : cardsBox.firstElementChild;
      if (expected !== el) cardsBox.insertBefore(el, expected);
      previous = el;
    }
    document.getElementById('no-cards').hidden = cards.length > 0;
    const list = document.getElementById('machines');
    if (list) {
      list.replaceChildren(
        ...cards.map((c) => {
          const option = document.createElement('option');
          option.value = c.id;
          return option;
        })
      );
    }
  }

  function renderAlerts(alerts) {
    const box = document.getElementById('alertas');
    box.replaceChildren(
      ...alerts.map((a) => {
        const li = document.createElement('li');
        li.className = 'alert ' + (a.level === 'warning' ? 'warning' : 'danger');
        li.dataset.kind = a.kind;
        text(li, a.text);
        return li;
      })
    );
    document.getElementById('no-alerts').hidden = alerts.length > 0;
  }

  function renderHealth(health) {
    for (const el of document.querySelectorAll('[data-h]')) {
      text(el, health.fields[el.dataset.h]);
      if (el.dataset.h === 'database') el.classList.toggle('bad', !health.databaseOk);
    }
  }

  function renderKeys(keys) {
    const body = document.getElementById('keys');
    body.replaceChildren(
      ...keys.map((k) => {
        const tr = document.createElement('tr');
        if (!k.active) tr.className = 'revoked';
        for (const value of [k.name, k.machineId, k.created, k.revoked || 'ativa']) {
          const td = document.createElement('td');
          text(td, value);
          tr.appendChild(td);
        }
        const td = document.createElement('td');
        if (k.active) {
          const button = document.createElement('button');
          button.type = 'button';
          button.className = 'danger';
          button.dataset.revoke = String(k.id);
          button.dataset.keyName = k.name;
          button.dataset.machine = k.machineId;
          text(button, 'Revogar');
          td.appendChild(button);
        }
        tr.appendChild(td);
        return tr;
      })
    );
    document.getElementById('no-keys').hidden = keys.length > 0;
  }

  // -- the chart: events per minute over 24 h, drawn as SVG ---------------------------

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceMax(value) {
    if (value <= 5) return 5;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 5, 10]) {
      if (value <= m * step) return m * step;
    }
    return 10 * step;
  }

  function hhmm(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  function drawChart(chart) {
    const box = document.getElementById('chart');
    if (!box || !chart) return;
    const width = Math.max(280, Math.round(box.getBoundingClientRect().width) || 800);
    const height = Math.max(160, Math.round(box.getBoundingClientRect().height) || 220);
    const left = 44;
    const right = 10;
    const top = 10;
    const bottom = 24;
    const minutes = Math.round((chart.end - chart.start) / 60000);
    const applied = new Array(minutes).fill(0);
    const conflicts = new Array(minutes).fill(0);
    for (const [minute, a, c] of chart.points) {
      const i = Math.floor((minute - chart.start) / 60000);
      if (i >= 0 && i < minutes) {
        applied[i] = a;
        conflicts[i] = c;
      }
    }
    const top_value = niceMax(Math.max(1, ...applied, ...conflicts));
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const x = (i) => left + (plotW * i) / Math.max(1, minutes - 1);
    const y = (v) => top + plotH - (plotH * v) / top_value;

    box.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    box.replaceChildren();
    for (const v of [0, top_value / 2, top_value]) {
      svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }, box);
      const label = svg('text', { class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, box);
      text(label, Number.isInteger(v) ? v : v.toFixed(1));
    }
    const axisTitle = svg('text', { class: 'tick', x: left, y: top + 8, 'text-anchor': 'start' }, box);
    text(axisTitle, ' eventos/min');
    svg('line', { class: 'axis', x1: left, x2: width - right, y1: y(0), y2: y(0) }, box);
    svg('line', { class: 'axis', x1: left, x2: left, y1: top, y2: y(0) }, box);
    const every = width < 500 ? 360 : 240; // a label every 6 h on a phone, 4 h on a desktop
    for (let i = 0; i < minutes; i++) {
      const at = chart.start + i * 60000;
      const local = new Date(at);
      if ((local.getHours() * 60 + local.getMinutes()) % every === 0) {
        svg('line', { class: 'axis', x1: x(i), x2: x(i), y1: y(0), y2: y(0) + 4 }, box);
        const label = svg('text', { class: 'tick', x: x(i), y: height - 6, 'text-anchor': 'middle' }, box);
        text(label, hhmm(at));
      }
    }
    for (const [series, cls] of [[applied, 'applied'], [conflicts, 'conflicts']]) {
      const points = series.map((v, i) => x(i).toFixed(1) + ',' + y(v).toFixed(1)).join(' ');
      svg('polyline', { class: cls, points: points }, box);
    }
  }

  function render(snapshot) {
    renderCards(snapshot.cards);
    renderAlerts(snapshot.alerts);
    renderHealth(snapshot.health);
    renderKeys(snapshot.keys);
    if (snapshot.chart) {
      lastChart = snapshot.chart;
      drawChart(lastChart);
    }
    const dbError = document.getElementById('db-error');
    if (dbError) dbError.hidden = snapshot.databaseOk;
    text(liveStatus, 'ao vivo · ' + hhmm(snapshot.serverNow));
    liveStatus.classList.remove('is-down');
  }

  // -- live: Server-Sent Events, reconnecting by itself -------------------------------

  let source = null;
  let retryMs = 1000;

  async function refresh() {
    const answer = await fetch(stateUrl, {
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
    });
    if (answer.status === 401) {
      location.assign(loginUrl());
      return false;
    }
    if (answer.ok) render(await answer.json());
    return answer.ok;
  }

  function connect() {
    source = new EventSource(eventsUrl);
    source.addEventListener('snapshot', (event) => {
      retryMs = 1000;
      render(JSON.parse(event.data));
    });
    source.addEventListener('error', () => {
      text(liveStatus, 'reconectando…');
      liveStatus.classList.add('is-down');
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired session: 401) or a proxy's error: look, then try again.
        source.close();
        setTimeout(() => {
          refresh()
            .then((ok) => {
              if (ok !== false) connect();
            })
            .catch(() => connect());
        }, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      }
    });
  }

  // -- actions -------------------------------------------------------------------------

  function showError(message) {
    text(actionError, message);
    actionError.hidden = !message;
  }

  function openDialog(id, sentence, value) {
    const dialog = document.getElementById(id);
    text(dialog.querySelector('[data-dialog-text]'), sentence);
    const input = dialog.querySelector('[data-dialog-value]');
    if (input) input.value = value;
    dialog.showModal();
    return dialog;
  }

  async function send(form) {
    const buttons = form.querySelectorAll('button[type=submit]');
    buttons.forEach((b) => (b.disabled = true));
    showError('');
    try {
      const answer = await fetch(form.getAttribute('action'), {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: 'application/json', 'X-CSRF-Token': csrf },
        credentials: 'same-origin',
      });
      if (answer.status === 401) {
        location.assign(loginUrl());
        return;
      }
      let body = {};
      try {
        body = await answer.json();
      } catch (e) {
        body = {};
      }
      const dialog = form.closest('dialog');
      if (dialog) dialog.close();
      if (!answer.ok || !body.success) {
        showError(body.error || 'O servidor recusou o pedido (' + answer.status + ').');
        return;
      }
      if (body.key) {
        text(document.getElementById('new-key'), body.key);
        text(document.getElementById('copy-status'), '');
        openDialog('dlg-key', 'Chave nº ' + body.id + ' para o PDV «' + body.machineId + '».', '');
        form.reset();
      }
      await refresh();
    } catch (e) {
      showError('Sem resposta do servidor: tente de novo.');
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains('action-form')) return;
    event.preventDefault();
    send(form);
  });

  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const forget = target.closest('[data-forget]');
    if (forget) {
      const id = forget.dataset.machine;
      openDialog('dlg-forget', 'Esquecer o PDV «' + id + '»?', id);
      return;
    }
    const revoke = target.closest('[data-revoke]');
    if (revoke) {
      openDialog(
        'dlg-revoke',
        'Revogar a chave ' + revoke.dataset.keyName + ' do PDV «' + revoke.dataset.machine + '»?',
        revoke.dataset.revoke
      );
      return;
    }
    const close = target.closest('[data-close]');
    if (close) {
      close.closest('dialog').close();
      return;
    }
    if (target.closest('[data-copy-key]')) copyKey();
  });

  // The key is never kept: closing its dialog forgets it.
  document.getElementById('dlg-key').addEventListener('close', () => {
    text(document.getElementById('new-key'), '');
  });

  async function copyKey() {
    const key = document.getElementById('new-key').textContent;
    const status = document.getElementById('copy-status');
    try {
      await navigator.clipboard.writeText(key);
      text(status, 'Copiada.');
    } catch (e) {
      // No clipboard without https on some browsers: select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById('new-key'));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      text(status, 'Selecionada: copie com Ctrl+C.');
    }
  }

  for (const select of document.querySelectorAll('select[data-autosubmit]')) {
    select.addEventListener('change', () => select.form.submit());
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => drawChart(lastChart), 150);
  });

  connect();
})();
