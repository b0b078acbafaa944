// The Klaviyo card inside Kustomer's insights panel. Kustomer's Cards SDK says which customer the
// agent has open (on load and whenever it changes); sidebar-card.js fetches that customer's card from
// our server with the ticket the page carries and shows it. Every Kustomer fact here comes from
// https://developer.kustomer.com/docs/apps/cards-sdk and the pages docs/vendors/kustomer-card.md cites.
(function () {
  "use strict";

  var card = window.KlaviyoSidebarCard;

  function resize() {
    // "Kustomer.resize()" with no argument, as Kustomer's card demo calls it after drawing
    // (https://developer.kustomer.com/kustomer-apps-platform/docs/card-js-demos)
    if (window.Kustomer && typeof window.Kustomer.resize === "function") {
      window.Kustomer.resize();
    }
  }

  function first(items, field) {
    if (!Array.isArray(items)) {
      return "";
    }
    for (var i = 0; i < items.length; i += 1) {
      var value = items[i] && items[i][field];
      if (typeof value === "string" && value.trim()) {
        return value.trim();
      }
    }
    return "";
  }

  // context.customer.id, .attributes.emails[].email and .attributes.phones[].phone, as Kustomer's
  // sample context has them (https://developer.kustomer.com/kustomer-apps-platform/docs/card-js-methods)
  function lookup(context) {
    var customer = context && context.customer;
    if (!customer || typeof customer !== "object") {
      return null;
    }
    var attributes = customer.attributes || {};
    var query = new URLSearchParams();
    var email = first(attributes.emails, "email");
    var phone = first(attributes.phones, "phone");
    if (email) {
      query.set("email", email);
    }
    if (phone) {
      query.set("phone", phone);
    }
    if (typeof customer.id === "string" && customer.id) {
      query.set("customer_id", customer.id);
    }
    return query.toString() ? query : null;
  }

  function show(context) {
    var query = lookup(context);
    if (!query) {
      card.say("Klaviyo", "Kustomer has not named a customer with an email or phone here, so there is no Klaviyo profile to show.");
      return;
    }
    card.show(query, function () {
      // a reloaded page carries a fresh ticket, and its URL still has Kustomer's parentUrl and id
      window.location.reload();
    });
  }

  card.onDrawn(resize);
  if (window.parent === window || !window.Kustomer) {
    card.say("Klaviyo", "This card shows inside Kustomer: open a customer there to see their Klaviyo profile.");
    return;
  }
  // "Call Kustomer.initialize once on load. A card or widget that never initializes isn't shown."
  window.Kustomer.initialize(show);
  window.Kustomer.on("context", show);
})();
